"""Image download limits found unguarded by mutation testing (tools/mutants.yaml), against real
loopback servers:

- a declared content-length over the cap is refused at once, before any body byte is awaited;
- an empty body is a download failure (11001), not an image for the decoder;
- a server that drips the image a few bytes at a time is cut at fetch.timeout_s in all (httpx's own
  timeouts are per read, and every read gets its bytes in time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from dentalai.errors import DentalAIError
from grpc_server.fetch import fetch_image
from tests.conftest import CallbackReceiver, make_settings
from tests.scripted_server import ScriptedServer

CAP = 64 * 1024


@pytest.fixture
def declared_too_large() -> Iterator[ScriptedServer]:
    """Declares a body 10 x the cap, then sends nothing."""
    server = ScriptedServer([(0, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (10 * CAP))])
    yield server
    server.stop()


async def test_a_declared_oversize_body_is_refused_at_once(declared_too_large: ScriptedServer) -> None:
    settings = make_settings("redis://127.0.0.1:1/0", limits={"max_image_bytes": CAP}, fetch={"timeout_s": 5})
    started = time.monotonic()
    with pytest.raises(DentalAIError) as err:
        await asyncio.wait_for(fetch_image(declared_too_large.url_for("/img.png"), settings), 20)
    assert err.value.code == 11001 and f"larger than {CAP} bytes" in err.value.message, err.value.message
    assert time.monotonic() - started < 2


async def test_an_empty_body_is_a_download_failure(callback_receiver: CallbackReceiver) -> None:
    callback_receiver.files["/empty.png"] = b""
    settings = make_settings("redis://127.0.0.1:1/0")
    with pytest.raises(DentalAIError) as err:
        await fetch_image(callback_receiver.url_for("/empty.png"), settings)
    assert err.value.code == 11001 and "empty" in err.value.message


@pytest.fixture
def dripping() -> Iterator[ScriptedServer]:
    """A close-delimited 200 whose body comes 16 bytes every 0.2 s for about 8 s."""
    head = b"HTTP/1.0 200 OK\r\ncontent-type: image/png\r\n\r\n"
    server = ScriptedServer([(0, head)] + [(0.2, b"\x89PNG" + b"\0" * 12)] * 40)
    yield server
    server.stop()


async def test_a_dripping_server_is_cut_at_the_total_timeout(dripping: ScriptedServer) -> None:
    settings = make_settings("redis://127.0.0.1:1/0", fetch={"timeout_s": 1})
    started = time.monotonic()
    with pytest.raises(DentalAIError) as err:
        await asyncio.wait_for(fetch_image(dripping.url_for("/img.png"), settings), 30)
    assert err.value.code == 11001 and "timed out" in err.value.message, err.value.message
    assert time.monotonic() - started < 3
