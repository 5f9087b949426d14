"""SSRF guard for every outbound request the service makes (image fetch, callbacks).

Public functions (all take the `ssrf` section of Settings):

- `is_forbidden_address(address, ssrf)`: the rule for one IP address. Refused: loopback, private,
  link-local, CGNAT (100.64/10), multicast, unspecified, reserved, and IPv6 forms that reach such an
  IPv4 address (::ffff:a.b.c.d mapped, 6to4 2002::/16) - unless the address is in `allow_cidrs`.
- `host_allow_listed(host, ssrf)`: True when the host name is in `allow_hosts`.
- `valid_host(host)`: for submission (10001): an IP literal, or a DNS name whose labels are 1-63
  characters (after IDNA) and whose whole is at most 253; anything else could never be resolved.
- `literal_forbidden(host, ssrf)`: for submission (10001): True when `host` is an IP literal that the
  rule refuses. Names are not resolved here; they are checked when connecting.
- `await resolve_all_checked(host, port, ssrf)`: resolve once, check EVERY address, return the
  addresses to connect to; raises `AddressRefused` or `Unresolvable`.
- `PinnedTransport(ssrf, ...)`: an httpx.AsyncHTTPTransport that does the above per request and
  connects to the checked address itself (Host header and TLS SNI keep the name, so certificates
  are verified against the name). A DNS answer that changes between check and connect (rebinding)
  cannot redirect the connection. Redirects are the client's business: use
  `follow_redirects=False` (the default of httpx).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any

import httpx

from dentalai.config import SsrfSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(httpx.TransportError):
    """The host is, or resolves to, an address the SSRF rules refuse (never retried)."""


class Unresolvable(httpx.ConnectError):
    """The host name could not be resolved (a connection error: worth a retry)."""


def _allowed_by_cidr(address: IPAddress, ssrf: SsrfSettings) -> bool:
    for cidr in ssrf.allow_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def is_forbidden_address(address: IPAddress, ssrf: SsrfSettings) -> bool:
    """True when a connection to `address` must be refused."""
    if _allowed_by_cidr(address, ssrf):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            # ::ffff:a.b.c.d and 2002:AABB:CCDD:: both reach the embedded IPv4 address.
            return is_forbidden_address(embedded, ssrf)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (address.version == 4 and address in _CGNAT)
    )


def host_allow_listed(host: str, ssrf: SsrfSettings) -> bool:
    name = host.lower().rstrip(".")
    return any(name == h.lower().rstrip(".") for h in ssrf.allow_hosts)


# Letters, digits, hyphen; underscore too, since real (if non-standard) hosts use it.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def valid_host(host: str) -> bool:
    """True for an IP literal or a name that DNS could carry (one trailing dot allowed)."""
    if _literal(host) is not None:
        return True
    name = host[:-1] if host.endswith(".") else host
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label, a label over 63 characters, or bad IDNA
        return False
    return 0 < len(ascii_name) <= 253 and all(_LABEL.fullmatch(label) for label in ascii_name.split("."))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def literal_forbidden(host: str, ssrf: SsrfSettings) -> bool:
    """True when `host` is an IP literal the rules refuse (names: checked at connect time)."""
    address = _literal(host)
    if address is None or host_allow_listed(host, ssrf):
        return False
    return is_forbidden_address(address, ssrf)


async def resolve_all_checked(host: str, port: int, ssrf: SsrfSettings) -> list[str]:
    """Every address of `host` (resolver order), after checking them all.

    All must pass: a name answering a public and a private address is refused, since which one
    a later lookup (or a resolver cache) returns is not ours to choose."""
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Unresolvable(f"host {host!r} could not be resolved") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses:
            raise Unresolvable(f"host {host!r} has no address")
    if not host_allow_listed(host, ssrf) and any(is_forbidden_address(a, ssrf) for a in addresses):
        raise AddressRefused(f"host {host!r} is or resolves to a refused address")
    return list(dict.fromkeys(str(a) for a in addresses))


class PinnedTransport(httpx.AsyncHTTPTransport):
    """Resolves and checks the host of each request, then connects to that very address."""

    def __init__(self, ssrf: SsrfSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssrf = ssrf

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await resolve_all_checked(host, port, self.ssrf)
        except httpx.TransportError as exc:
            exc.request = request
            raise
        # The Host header was set from the original URL when the request was built; only the
        # connection target changes. SNI (and certificate checks) keep using the name.
        if url.scheme == "https" and _literal(host) is None:
            request.extensions = {**request.extensions, "sni_hostname": host}
        for i, address in enumerate(addresses):
            request.url = url.copy_with(host=address)
            try:
                return await super().handle_async_request(request)
            except httpx.ConnectError:
                # e.g. "localhost" -> ::1 first while the server listens on 127.0.0.1 only
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")
