"""Image download: size cap, HTTP errors, SSRF refusal after resolution (11001)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _Streamer:
    """A loopback HTTP server whose GET answers a body of `total` bytes in 64 KiB pieces WITHOUT a
    content-length (chunked, or HTTP/1.0 ended by closing), counting what it managed to send."""

    PIECE = 64 * 1024

    def __init__(self, total: int, chunked: bool) -> None:
        self.total, self.chunked, self.sent = total, chunked, 0
        self.done = threading.Event()
        streamer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if chunked else "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                # A small send buffer: what the client has not read cannot pile up here unseen.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, streamer.PIECE)
                self.send_response(200)
                self.send_header("content-type", "image/png")
                if streamer.chunked:
                    self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                piece = b"\x89PNG" + b"\0" * (streamer.PIECE - 4)
                try:
                    while streamer.sent < streamer.total:
                        if streamer.chunked:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        else:
                            self.wfile.write(piece)
                        self.wfile.flush()
                        streamer.sent += len(piece)
                    if streamer.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up: what we want once it is over the cap
                    pass
                finally:
                    streamer.done.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/big.png"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
async def test_cap_holds_while_streaming_a_body_without_length(chunked: bool) -> None:
    """No content-length to refuse up front: the bytes are counted as they come, and the download
    stops soon after the cap (the server is not drained, the image is not held in memory)."""
    cap = 1024 * 1024
    total = 48 * cap  # what the server would send to a client that never stops
    streamer = _Streamer(total, chunked)
    settings = make_settings(
        "redis://127.0.0.1:1/0", limits={"max_image_bytes": cap}, fetch={"timeout_s": 20}
    )
    try:
        started = time.monotonic()
        with pytest.raises(DentalAIError) as err:
            await fetch_image(streamer.url, settings)
        elapsed = time.monotonic() - started
        assert err.value.code == 11001
        assert f"larger than {cap} bytes" in err.value.message, err.value.message  # not a timeout
        assert streamer.done.wait(5), "the server was still sending after the download gave up"
        # What the client read plus what sat in the socket buffers; nowhere near the whole body.
        assert streamer.sent <= 4 * cap, f"{streamer.sent} bytes sent for a {cap}-byte cap"
        assert elapsed < 5, elapsed
    finally:
        streamer.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
async def test_a_streamed_body_within_the_cap_is_returned_whole(chunked: bool) -> None:
    streamer = _Streamer(4 * _Streamer.PIECE, chunked)
    settings = make_settings("redis://127.0.0.1:1/0", limits={"max_image_bytes": 4 * _Streamer.PIECE})
    try:
        data = await fetch_image(streamer.url, settings)
    finally:
        streamer.close()
    assert len(data) == 4 * _Streamer.PIECE and data.startswith(b"\x89PNG")
