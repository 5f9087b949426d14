"""netguard's PinnedTransport and address rule at the points mutation testing (tools/mutants.yaml)
found unguarded. No packet leaves the machine: names are resolved by a patched resolver and the
connection itself (httpx's transport below PinnedTransport) is replaced by a recorder.

- the connection goes to the address that was checked, never to the name (a second lookup could
  answer another address: DNS rebinding), while the Host header and TLS SNI keep the name;
- when the first address of a name does not answer, the next checked one is tried;
- an IPv4-mapped IPv6 address follows the rule of its IPv4 address, both ways.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import pytest

from dentalai.config import SsrfSettings
from grpc_server.netguard import PinnedTransport, is_forbidden_address
from tests.conftest import make_settings

PUBLIC = ["93.184.216.34", "93.184.216.35"]  # documentation-range-like public addresses, never contacted


def ssrf(**overrides: Any) -> SsrfSettings:
    strict = {"allow_cidrs": [], "allow_hosts": [], **overrides}
    return make_settings("redis://127.0.0.1:1/0", ssrf=strict).ssrf


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """hooks.example.com resolves to PUBLIC (in that order); the lookups are recorded."""
    lookups: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: int, **kw: Any) -> list[Any]:
        lookups.append(host)
        if host != "hooks.example.com":
            raise socket.gaierror(f"no such host {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in PUBLIC]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[httpx.URL, httpx.Request]]:
    """Records what reaches httpx's own transport (the connection: its URL then, and the request)
    and answers 204; an address in the transport's `refusing` fails to connect instead."""
    seen: list[tuple[httpx.URL, httpx.Request]] = []

    async def connect(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        seen.append((request.url, request))
        if request.url.host in getattr(self, "refusing", ()):
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204, request=request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", connect)
    return seen


async def test_the_connection_goes_to_the_checked_address_with_the_name_in_host_and_sni(
    resolver: list[str], connections: list[tuple[httpx.URL, httpx.Request]]
) -> None:
    async with httpx.AsyncClient(transport=PinnedTransport(ssrf()), follow_redirects=False) as client:
        response = await client.post("https://hooks.example.com/cb", content=b"{}")
    assert response.status_code == 204
    [(url, request)] = connections
    assert url.host == PUBLIC[0]  # the checked address itself: no second lookup decides
    assert url.scheme == "https" and url.path == "/cb"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"  # certificates checked for the name
    assert resolver == ["hooks.example.com"]


async def test_the_next_checked_address_is_tried_when_the_first_does_not_answer(
    resolver: list[str], connections: list[tuple[httpx.URL, httpx.Request]]
) -> None:
    transport = PinnedTransport(ssrf())
    transport.refusing = {PUBLIC[0]}  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://hooks.example.com/img.png")
    assert response.status_code == 204
    assert [url.host for url, _ in connections] == PUBLIC


@pytest.mark.parametrize(
    ("address", "allow", "forbidden"),
    [
        ("::ffff:8.8.8.8", [], False),  # a public IPv4 address, written mapped
        ("::ffff:10.0.0.1", [], True),
        ("::ffff:127.0.0.1", [], True),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"], False),  # allowed as IPv4: allowed mapped too
        ("::ffff:169.254.169.254", ["127.0.0.0/8"], True),
    ],
)
def test_a_mapped_address_follows_its_ipv4_rule(address: str, allow: list[str], forbidden: bool) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address), ssrf(allow_cidrs=allow)) is forbidden
