"""Optional TLS on gRPC: a real `dentalai grpc` with a certificate made in the test, reached over
TLS by a client trusting that CA and by the REST bridge (api.grpc_tls); plaintext is refused."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dentalai.config import Settings
from tests.conftest import Processes, RedisServer, make_settings

pytestmark = pytest.mark.slow


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (it is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class TlsStack:
    settings: Settings
    cert: Path


@pytest.fixture(scope="module")
def tls_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = write_self_signed(directory)
    settings = make_settings(redis_server.url, grpc={"tls_cert": str(cert), "tls_key": str(key)})
    settings = settings.with_overrides(
        api={"grpc_target": f"localhost:{settings.grpc.port}", "grpc_tls": True, "grpc_tls_ca": str(cert)}
    )
    procs = Processes(log_dir=directory)
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start(["api"], settings, wait_port=settings.api.port)
        yield TlsStack(settings, cert)
    finally:
        procs.stop_all()


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_client_trusting_the_ca_is_served_over_tls(tls_stack: TlsStack) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_stack.cert.read_bytes())
    with grpc.secure_channel(f"localhost:{tls_stack.settings.grpc.port}", credentials) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_client_is_refused(tls_stack: TlsStack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_stack.settings.grpc.port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            _health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_not_trusting_the_certificate_is_refused(tls_stack: TlsStack) -> None:
    target = f"localhost:{tls_stack.settings.grpc.port}"
    with grpc.secure_channel(target, grpc.ssl_channel_credentials()) as channel:  # system roots only
        with pytest.raises(grpc.RpcError) as err:
            _health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_rest_bridge_reaches_the_tls_server(tls_stack: TlsStack) -> None:
    url = f"http://127.0.0.1:{tls_stack.settings.api.port}"
    answer = httpx.get(f"{url}/api/v1/tasks/no-such-task", timeout=10)
    # 10009 comes from the gRPC service itself: the call crossed the TLS channel.
    assert answer.status_code == 404 and answer.json()["code"] == 10009
    ready = httpx.get(f"{url}/readyz", timeout=10).json()
    assert ready["data"]["storeReachable"] is True
