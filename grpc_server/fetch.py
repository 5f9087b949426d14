"""Download an imageUrl for the worker: timeouts, size cap, no redirects, SSRF guard -> 11001.

The guard is netguard's `PinnedTransport`, the same as the callbacks': the host is resolved once,
every address is checked, and the connection goes to the checked address (Host header and TLS
SNI keep the name), so DNS rebinding cannot redirect it.
"""

from __future__ import annotations

import asyncio

import httpx

from dentalai.config import Settings
from dentalai.errors import DentalAIError, ErrorCode
from grpc_server.netguard import AddressRefused, PinnedTransport, Unresolvable


def download_error(message: str) -> DentalAIError:
    return DentalAIError(ErrorCode.IMAGE_DOWNLOAD_FAILED, message)


async def fetch_image(url: str, settings: Settings) -> bytes:
    """The image bytes at `url`, at most limits.max_image_bytes; DentalAIError 11001 otherwise."""
    cap = settings.limits.max_image_bytes
    timeout = httpx.Timeout(settings.fetch.timeout_s, connect=settings.fetch.connect_timeout_s)
    transport = PinnedTransport(settings.ssrf)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.fetch.timeout_s):
            async with httpx.AsyncClient(
                transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
            ) as client:
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise download_error(f"image download answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > cap:
                        raise download_error(f"image larger than {cap} bytes")
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise download_error(f"image larger than {cap} bytes")
                        chunks.append(chunk)
    except AddressRefused as exc:
        raise download_error(f"image host refused: {exc}") from None
    except Unresolvable as exc:
        raise download_error(f"image host could not be resolved: {exc}") from None
    except (TimeoutError, httpx.TimeoutException):
        raise download_error("image download timed out") from None
    except httpx.HTTPError as exc:
        raise download_error(f"image download failed ({type(exc).__name__})") from None
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:  # submission checks make this rare
        raise download_error(f"image URL cannot be fetched: {str(exc)[:200]}") from None
    if size == 0:
        raise download_error("image download was empty")
    return b"".join(chunks)
