"""Settling a callback attempt against what happened meanwhile (real redis-server; found unguarded by
mutation testing, tools/mutants.yaml):

- a re-send while an attempt is in flight wins: the attempt's settle writes nothing;
- an attempt settled after its task expired does not bring the task hash back (without a TTL);
- a re-send starts the attempts again from zero.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server.connection import redis_client
from grpc_server.dispatcher import Dispatcher
from tests.callbacks.helpers import Harness, finished_task


@pytest.fixture
async def parts(settings: Settings) -> AsyncIterator[tuple[Harness, Dispatcher]]:
    harness = Harness(settings)
    redis = redis_client(settings)
    dispatcher = Dispatcher(settings, redis)  # only its claim is used: nothing is sent
    yield harness, dispatcher
    await dispatcher.aclose()
    await redis.aclose()
    await harness.redis.aclose()


def given_up(attempts: int) -> task_pb2.CallbackInfo:
    return task_pb2.CallbackInfo(
        url="http://127.0.0.1:9/hook", state=task_pb2.EXHAUSTED, attempts=attempts, last_status_code=503
    )


async def test_a_resend_during_an_attempt_is_kept(parts: tuple[Harness, Dispatcher]) -> None:
    harness, dispatcher = parts
    ref = await finished_task(harness.store, "http://127.0.0.1:9/hook")
    [(claimed, lease)] = await dispatcher.claim(10)
    assert claimed == ref
    await harness.store.resend(ref)  # the replay route, while the attempt is in flight
    stat = harness.keys.callback_stat("exhausted")
    assert not await harness.store.settle_callback(ref, lease, given_up(3), stat, None)
    info = await harness.callback(ref)
    assert info.state == task_pb2.PENDING and info.attempts == 0  # the re-send's state, not the attempt's
    assert await harness.scheduled() == [str(ref)]  # still due: it will be sent
    assert (await harness.stats())["exhausted"] == 1  # the attempt itself is still counted


async def test_an_attempt_settled_after_its_task_expired_writes_nothing(
    parts: tuple[Harness, Dispatcher],
) -> None:
    harness, dispatcher = parts
    ref = await finished_task(harness.store, "http://127.0.0.1:9/hook")
    [(_, lease)] = await dispatcher.claim(10)
    await harness.redis.delete(harness.keys.task(ref))  # expired while the POST was in flight
    stat = harness.keys.callback_stat("exhausted")
    assert await harness.store.settle_callback(ref, lease, given_up(1), stat, None)
    assert not await harness.redis.exists(harness.keys.task(ref))
    assert await harness.scheduled() == []


async def test_a_resend_starts_the_attempts_again(parts: tuple[Harness, Dispatcher]) -> None:
    harness, dispatcher = parts
    ref = await finished_task(harness.store, "http://127.0.0.1:9/hook")
    [(_, lease)] = await dispatcher.claim(10)
    assert await harness.store.settle_callback(ref, lease, given_up(3), None, None)
    assert (await harness.callback(ref)).attempts == 3
    task = await harness.store.resend(ref)
    assert task.callback.state == task_pb2.PENDING and task.callback.attempts == 0
    info = await harness.callback(ref)
    assert info.state == task_pb2.PENDING and info.attempts == 0
