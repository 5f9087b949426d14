"""Dispatcher edges found unguarded by mutation testing (tools/mutants.yaml), against real loopback
servers:

- a receiver that drips its answer a byte at a time is cut at callbacks.timeout_s in all (httpx's
  own timeouts are per read, and every read gets a byte in time);
- a schedule entry whose callback is no longer PENDING (a stale entry) is dropped unsent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server.connection import redis_client
from grpc_server.dispatcher import Dispatcher
from tests.callbacks.helpers import Harness, finished_task, running_dispatcher
from tests.scripted_server import ScriptedServer


@pytest.fixture
async def dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    redis = redis_client(settings)
    d = Dispatcher(settings.with_overrides(callbacks={"timeout_s": 1}), redis)
    yield d
    await d.aclose()
    await redis.aclose()


@pytest.fixture
def dripping() -> Iterator[ScriptedServer]:
    """Answers 200 with its headers a byte every 0.2 s (about 8 s in all)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    server = ScriptedServer([(0.2, bytes([b])) for b in head])
    yield server
    server.stop()


async def test_a_dripping_receiver_is_cut_at_the_total_timeout(
    dispatcher: Dispatcher, dripping: ScriptedServer
) -> None:
    started = time.monotonic()
    attempt = await asyncio.wait_for(
        dispatcher.post(dripping.url_for("/hook"), b"{}", {}), timeout=20
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
