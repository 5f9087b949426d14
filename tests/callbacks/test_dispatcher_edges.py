"""Dispatcher edges found unguarded by mutation testing (tools/mutants.yaml), against real loopback
servers:

- a receiver that drips its answer a byte at a time is cut at callbacks.timeout_s in all (httpx's
  own timeouts are per read, and every read gets a byte in time);
- a schedule entry whose callback is no longer PENDING (a stale entry) is dropped unsent.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server.connection import redis_client
from grpc_server.dispatcher import Dispatcher
from tests.callbacks.helpers import Harness, finished_task, running_dispatcher


class RawServer:
    """A loopback TCP server that records each connection's first bytes and answers with `script`:
    a list of (delay_s, bytes) sent in order; the connection is then held open until stop()."""

    def __init__(self, script: list[tuple[float, bytes]]) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.stopped = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.received.append(conn.recv(65536))
                for delay, data in self.script:
                    if self.stopped.wait(delay):
                        return
                    conn.sendall(data)
                self.stopped.wait(30)
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
async def dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    redis = redis_client(settings)
    d = Dispatcher(settings.with_overrides(callbacks={"timeout_s": 1}), redis)
    yield d
    await d.aclose()
    await redis.aclose()


@pytest.fixture
def dripping() -> Iterator[RawServer]:
    """Answers 200 with its headers a byte every 0.2 s (about 8 s in all)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    server = RawServer([(0.2, bytes([b])) for b in head])
    yield server
    server.stop()


async def test_a_dripping_receiver_is_cut_at_the_total_timeout(
    dispatcher: Dispatcher, dripping: RawServer
) -> None:
    started = time.monotonic()
    attempt = await asyncio.wait_for(
        dispatcher.post(f"http://127.0.0.1:{dripping.port}/hook", b"{}", {}), timeout=20
    )
    elapsed = time.monotonic() - started
    assert (attempt.status, attempt.error) == (None, "timeout")
    assert elapsed < 3, elapsed  # callbacks.timeout_s is 1 s


async def test_a_stale_entry_of_a_delivered_callback_is_dropped_unsent(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    ref = await finished_task(harness.store, callback_receiver.url)
    delivered = task_pb2.CallbackInfo(url=callback_receiver.url, state=task_pb2.DELIVERED, attempts=1)
    await harness.redis.hset(harness.keys.task(ref), "callback", delivered.SerializeToString())
    assert await harness.scheduled() == [str(ref)]  # e.g. left by a settle that did not finish
    async with running_dispatcher(settings):
        for _ in range(60):
            if not await harness.scheduled():
                break
            await asyncio.sleep(0.05)
    assert await harness.scheduled() == [] and callback_receiver.requests == []
    assert (await harness.callback(ref)).state == task_pb2.DELIVERED


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    h = Harness(settings)
    yield h
    await h.redis.aclose()
