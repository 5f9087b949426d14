"""SSRF: internal callbackUrl/imageUrl are refused, and the image fetch refuses BEFORE connecting.

No test here sends a packet to a non-loopback address: connection attempts are intercepted (and
fail the test) and names are resolved by a patched resolver."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from dentalai.config import Settings
from dentalai.errors import DentalAIError
from grpc_server import fetch
from grpc_server.validation import validate_submission
from tests.backbone.helpers import submit_request
from tests.conftest import make_settings

INTERNAL = [
    "127.0.0.1", "127.1.2.3", "[::1]", "0.0.0.0", "169.254.169.254", "10.0.0.1", "10.255.255.254",
    "172.16.0.1", "172.31.255.254", "192.168.0.1", "100.64.0.1", "100.127.255.254", "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]", "[fe80::1]", "[fd00::1]", "224.0.0.1", "[::]",
]
# 6to4 addresses whose embedded IPv4 is internal (2002:AABB:CCDD:: routes to AA.BB.CC.DD via a relay).
SIXTOFOUR = ["[2002:7f00:1::]", "[2002:a9fe:a9fe::]", "[2002:a00:1::]"]


def strict() -> Settings:
    """No allow-list: what production runs."""
    return make_settings("redis://127.0.0.1:1/0", ssrf={"allow_cidrs": [], "allow_hosts": []})


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any connection (httpx's transport, below netguard's PinnedTransport checks) fails the test
    and is recorded."""
    attempts: list[str] = []

    async def connect(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        attempts.append(str(request.url))
        raise AssertionError(f"connected to {request.url}")

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", connect)
    return attempts


def _code(call: Any) -> tuple[int, str]:
    with pytest.raises(DentalAIError) as err:
        call()
    return int(err.value.code), err.value.message


@pytest.mark.parametrize("host", INTERNAL + SIXTOFOUR)
def test_internal_literals_are_refused_at_submission(host: str) -> None:
    url = f"http://{host}:8080/x"
    for field in ("callback_url", "image_url"):
        extra = {"image_data": None} if field == "image_url" else {}
        request = submit_request("https://hooks.example.com/cb", **{field: url, **extra})
        code, _ = _code(lambda r=request: validate_submission(r, strict()))
        assert code == 10001, (field, host)


@pytest.mark.parametrize("host", ["10.0.0.1", "[::1]", "169.254.169.254", "127.0.0.1"])
def test_allow_listed_cidr_is_accepted(host: str) -> None:
    cidrs = ["10.0.0.0/8", "::1/128", "169.254.0.0/16", "127.0.0.0/8"]
    allowed = strict().with_overrides(ssrf={"allow_cidrs": cidrs})
    validate_submission(submit_request(f"http://{host}/cb"), allowed)


@pytest.mark.parametrize("host", INTERNAL + SIXTOFOUR)
async def test_fetch_refuses_internal_literals_before_connecting(host: str, no_connect: list[str]) -> None:
    with pytest.raises(DentalAIError) as err:
        await fetch.fetch_image(f"http://{host}/img.png", strict())
    assert err.value.code == 11001 and not no_connect


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"], ["10.1.1.1"], ["169.254.169.254"], ["::1"], ["100.64.1.1"],
        ["93.184.216.34", "10.0.0.7"],
    ],
    ids=["loopback", "10/8", "metadata", "v6-loopback", "cgnat", "public-plus-private"],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    answers: list[str], no_connect: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def getaddrinfo(self: Any, host: str, port: int, **_: Any) -> list[Any]:
        family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
        return [(family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    with pytest.raises(DentalAIError) as err:
        await fetch.fetch_image("https://images.example.com/img.png", strict())
    assert err.value.code == 11001 and "refused" in err.value.message and not no_connect


async def test_real_localhost_name_is_refused_before_connecting(no_connect: list[str]) -> None:
    with pytest.raises(DentalAIError) as err:
        await fetch.fetch_image("http://localhost:9/img.png", strict())
    assert err.value.code == 11001 and not no_connect


@pytest.fixture
def redirector() -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering 302 to the cloud metadata address; records what it served."""
    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            served.append(self.path)
            self.send_response(302)
            self.send_header("location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/img.png", served
    server.shutdown()


async def test_redirect_to_internal_address_is_not_followed(
    redirector: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = redirector
    sent: list[str] = []
    real_send = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> httpx.Response:
        sent.append(str(request.url))
        assert request.url.host == "127.0.0.1", f"tried {request.url}"
        return await real_send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", send)
    loopback_only = strict().with_overrides(ssrf={"allow_cidrs": ["127.0.0.0/8"]})
    with pytest.raises(DentalAIError) as err:
        await fetch.fetch_image(url, loopback_only)
    assert err.value.code == 11001 and "302" in err.value.message
    assert served == ["/img.png"] and len(sent) == 1


LONG_LABEL = "a" * 64  # DNS labels are at most 63 characters


@pytest.mark.parametrize(
    "host",
    [
        f"{LONG_LABEL}.example.com", "a..example.com", ".example.com", ("a" * 60 + ".") * 5 + "com",
        "ex!ample.com",
    ],
    ids=["64-char-label", "empty-label", "leading-dot", "over-253", "bad-character"],
)
def test_invalid_host_names_are_refused_at_submission(host: str) -> None:
    for field in ("callback_url", "image_url"):
        extra = {"image_data": None} if field == "image_url" else {}
        request = submit_request("https://hooks.example.com/cb", **{field: f"https://{host}/x", **extra})
        code, message = _code(lambda r=request: validate_submission(r, strict()))
        assert (code, "valid host name" in message) == (10001, True), (field, host, message)


@pytest.mark.parametrize(
    "host", ["hooks.example.com.", "xn--bcher-kva.example", "bücher.example", "a_b.example"]
)
def test_valid_host_names_pass_submission(host: str) -> None:
    validate_submission(submit_request(f"https://{host}/cb"), strict())


async def test_fetch_of_a_host_no_resolver_accepts_is_11001(no_connect: list[str]) -> None:
    # Past submission (an old task, another client): a download failure, never an internal error.
    with pytest.raises(DentalAIError) as err:
        await fetch.fetch_image(f"https://{LONG_LABEL}.example.com/img.png", strict())
    assert err.value.code == 11001 and not no_connect
