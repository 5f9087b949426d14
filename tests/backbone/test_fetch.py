"""Image download: size cap, HTTP errors, SSRF refusal after resolution (11001)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dentalai.errors import DentalAIError
from grpc_server.fetch import fetch_image
from tests.conftest import CallbackReceiver, make_settings


async def test_fetch_returns_bytes_and_enforces_the_cap(callback_receiver: CallbackReceiver) -> None:
    callback_receiver.files["/img"] = b"x" * 1000
    settings = make_settings("redis://127.0.0.1:1/0", limits={"max_image_bytes": 1000})
    assert await fetch_image(callback_receiver.url_for("/img"), settings) == b"x" * 1000
    small = settings.with_overrides(limits={"max_image_bytes": 999})
    with pytest.raises(DentalAIError) as err:
        await fetch_image(callback_receiver.url_for("/img"), small)
    assert err.value.code == 11001
    with pytest.raises(DentalAIError) as err:
        await fetch_image(callback_receiver.url_for("/missing"), settings)
    assert err.value.code == 11001 and "404" in err.value.message


async def test_name_resolving_to_loopback_is_refused_unless_allowed(
    callback_receiver: CallbackReceiver,
) -> None:
    callback_receiver.files["/img"] = b"data"
    url = callback_receiver.url_for("/img").replace("127.0.0.1", "localhost")
    strict = make_settings("redis://127.0.0.1:1/0", ssrf={"allow_cidrs": []})
    with pytest.raises(DentalAIError) as err:
        await fetch_image(url, strict)
    assert err.value.code == 11001 and "refused" in err.value.message
    by_name = strict.with_overrides(ssrf={"allow_hosts": ["localhost"]})
    assert await fetch_image(url, by_name) == b"data"


async def test_trailing_dot_names_match_allow_hosts(
    callback_receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`images.internal.` is the same host as `images.internal` (one rule, netguard's)."""
    real = asyncio.BaseEventLoop.getaddrinfo

    async def getaddrinfo(self: Any, host: str, port: int, **kw: Any) -> list[Any]:
        if host.rstrip(".") == "images.internal":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(self, host, port, **kw)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    callback_receiver.files["/img"] = b"data"
    strict = make_settings("redis://127.0.0.1:1/0", ssrf={"allow_cidrs": []})
    for allowed, host in [("images.internal", "images.internal."), ("images.internal.", "images.internal")]:
        url = callback_receiver.url_for("/img").replace("127.0.0.1", host)
        settings = strict.with_overrides(ssrf={"allow_hosts": [allowed]})
        assert await fetch_image(url, settings) == b"data", (allowed, host)
