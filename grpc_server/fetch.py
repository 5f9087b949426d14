"""Download an imageUrl for the worker: timeouts, size cap, no redirects, SSRF guard -> 11001.

The host is resolved once, every address is checked, and the connection goes to the checked
address (Host header and TLS SNI keep the name), so DNS rebinding cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

import httpx

from dentalai.config import Settings
from dentalai.errors import DentalAIError, ErrorCode
from grpc_server.validation import forbidden_address


def download_error(message: str) -> DentalAIError:
    return DentalAIError(ErrorCode.IMAGE_DOWNLOAD_FAILED, message)


async def resolve_checked(host: str, port: int, settings: Settings) -> str:
    """One address of `host` that the SSRF rules allow; raises 11001 when any address is refused."""
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise download_error(f"image host {host!r} could not be resolved") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    allowed_host = host.lower() in {h.lower() for h in settings.ssrf.allow_hosts}
    if not allowed_host and any(forbidden_address(a, settings) for a in addresses):
        raise download_error(f"image host {host!r} resolves to a refused address")
    return str(addresses[0])


async def fetch_image(url: str, settings: Settings) -> bytes:
    """The image bytes at `url`, at most limits.max_image_bytes; DentalAIError 11001 otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await resolve_checked(host, port, settings)
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if not parts.port else f"{host}:{parts.port}"
    cap = settings.limits.max_image_bytes
    timeout = httpx.Timeout(settings.fetch.timeout_s, connect=settings.fetch.connect_timeout_s)
    try:
        async with asyncio.timeout(settings.fetch.timeout_s):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                request = client.build_request(
                    "GET", pinned, headers={"host": host_header}, extensions={"sni_hostname": host}
                )
                response = await client.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        raise download_error(f"image download answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > cap:
                        raise download_error(f"image larger than {cap} bytes")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise download_error(f"image larger than {cap} bytes")
                        chunks.append(chunk)
                finally:
                    await response.aclose()
    except TimeoutError:
        raise download_error("image download timed out") from None
    except httpx.TimeoutException:
        raise download_error("image download timed out") from None
    except httpx.HTTPError as exc:
        raise download_error(f"image download failed ({type(exc).__name__})") from None
    if size == 0:
        raise download_error("image download was empty")
    return b"".join(chunks)
