"""The dispatcher against a real redis-server and a real loopback receiver (in-process loop).

Settings from tests/conftest.py: retry_delays_s [0.2, 0.2] (3 attempts), jitter 0, poll 0.05 s."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server import callbacks
from tests.callbacks.helpers import Harness, finished_task, received, running_dispatcher

OLD_SECRET = "old-secret-0123456789abcdef0123456789abcdef"
NEW_SECRET = "new-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture
def harness(settings: Settings) -> Harness:
    return Harness(settings)


async def test_delivers_signed_body_once(settings: Settings, callback_receiver, harness: Harness) -> None:
    settings = settings.with_overrides(callbacks={"signing_secrets": [OLD_SECRET, NEW_SECRET]})
    task_id = await finished_task(harness.store, callback_receiver.url, metadata={"clinic": "c1", "n": 3})
    async with running_dispatcher(settings):
        [request] = await received(callback_receiver, 1)
        info = await harness.wait_state(task_id, task_pb2.DELIVERED)
    body = request.json()
    assert body["taskId"] == task_id.task_id and body["status"] == "SUCCEEDED" and body["code"] == 0
    assert body["metadata"] == {"clinic": "c1", "n": 3}
    assert body["data"]["image"] == {"width": 640, "height": 320, "pixelSpacingMm": 0.0, "spacingSource": ""}
    assert body["model"] == {"name": "pano-teeth", "version": "1.0.0"}
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (OLD_SECRET, NEW_SECRET):  # either side of a rotation verifies
        assert callbacks.verify(secret, headers, request.body)
    assert not callbacks.verify("wrong", headers, request.body)
    assert info.attempts == 1 and info.last_status_code == 200 and info.HasField("delivered_at")
    assert await harness.stats() == {"delivered": 1, "retry": 0, "failed": 0, "exhausted": 0}
    assert await harness.scheduled() == []
    await asyncio.sleep(0.3)
    assert len(callback_receiver.requests) == 1


async def test_failed_task_body(settings: Settings, callback_receiver, harness: Harness) -> None:
    await finished_task(harness.store, callback_receiver.url, failed=True)
    async with running_dispatcher(settings):
        [request] = await received(callback_receiver, 1)
    body = request.json()
    assert body["status"] == "FAILED" and body["code"] == 11002 and body["data"] is None


async def test_500_then_200_retries_with_the_same_webhook_id(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    callback_receiver.respond(500)
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        first, second = await received(callback_receiver, 2)
        info = await harness.wait_state(task_id, task_pb2.DELIVERED)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert second.at - first.at >= 0.2 - 0.02
    assert info.attempts == 2
    assert await harness.stats() == {"delivered": 1, "retry": 1, "failed": 0, "exhausted": 0}


async def test_410_fails_without_retry(settings: Settings, callback_receiver, harness: Harness) -> None:
    callback_receiver.respond(410)
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        await received(callback_receiver, 1)
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
        await asyncio.sleep(0.5)
    assert len(callback_receiver.requests) == 1
    assert info.last_status_code == 410 and info.attempts == 1 and "410" in info.last_error
    assert (await harness.stats())["failed"] == 1 and await harness.scheduled() == []


async def test_exhausted_after_the_last_retry_then_resend(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    callback_receiver.respond(503, 502, 500)
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        await received(callback_receiver, 3)
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
        await asyncio.sleep(0.5)
        assert len(callback_receiver.requests) == 3  # 1 + len(retry_delays_s)
        assert info.attempts == 3 and info.last_status_code == 500
        assert await harness.stats() == {"delivered": 0, "retry": 2, "failed": 0, "exhausted": 1}
        task = await harness.store.get(task_id)
        assert task is not None and task.status == task_pb2.SUCCEEDED  # result still readable
        await harness.store.resend(task_id)  # the replay route's store call
        requests = await received(callback_receiver, 4)
        info = await harness.wait_state(task_id, task_pb2.DELIVERED)
    assert requests[3].headers["webhook-id"] == requests[0].headers["webhook-id"]
    assert info.attempts == 1


async def test_429_retry_after_is_honoured(settings: Settings, callback_receiver, harness: Harness) -> None:
    callback_receiver.respond(429, headers={"Retry-After": "1"})
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        first, second = await received(callback_receiver, 2, timeout=10)
        await harness.wait_state(task_id, task_pb2.DELIVERED)
    assert second.at - first.at >= 0.95  # not the 0.2 s of the schedule


async def test_timeout_is_retried(settings: Settings, callback_receiver, harness: Harness) -> None:
    settings = settings.with_overrides(callbacks={"timeout_s": 0.5})
    callback_receiver.respond(200, delay_s=2.0)  # answers after the attempt gave up
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        await received(callback_receiver, 2)
        info = await harness.wait_state(task_id, task_pb2.DELIVERED)
    assert info.attempts == 2 and (await harness.stats())["retry"] == 1


async def test_connection_refused_is_retried(settings: Settings, harness: Harness) -> None:
    from tests.conftest import free_port

    task_id = await finished_task(harness.store, f"http://127.0.0.1:{free_port()}/hook")
    async with running_dispatcher(settings):
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
    assert info.attempts == 3 and info.last_status_code == 0 and "Connect" in info.last_error


async def test_a_slow_receiver_does_not_hold_up_the_others(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    from tests.conftest import start_callback_receiver

    slow = start_callback_receiver()
    try:
        slow.respond(200, delay_s=2.0)
        slow_id = await finished_task(harness.store, slow.url)
        await asyncio.sleep(0.01)
        fast_ids = [await finished_task(harness.store, callback_receiver.url) for _ in range(5)]
        async with running_dispatcher(settings):
            await received(slow, 1)
            started = time.time()
            await received(callback_receiver, 5)
            fast_done = time.time()
            await harness.wait_state(slow_id, task_pb2.DELIVERED)
        assert fast_done - started < 1.5
        for task_id in fast_ids:
            assert (await harness.callback(task_id)).state == task_pb2.DELIVERED
    finally:
        slow.server.shutdown()
        slow.server.server_close()


async def test_two_dispatchers_deliver_each_callback_once(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    ids = [await finished_task(harness.store, callback_receiver.url) for _ in range(20)]
    async with running_dispatcher(settings), running_dispatcher(settings):
        await received(callback_receiver, 20)
        for task_id in ids:
            await harness.wait_state(task_id, task_pb2.DELIVERED)
        await asyncio.sleep(0.3)
    got = [json.loads(r.body)["taskId"] for r in callback_receiver.requests]
    assert sorted(got) == sorted(ref.task_id for ref in ids)


async def test_callback_host_resolving_to_loopback_is_refused(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    strict = settings.with_overrides(ssrf={"allow_cidrs": [], "allow_hosts": []})
    hook = f"http://localhost:{callback_receiver.server.server_port}/hook"
    task_id = await finished_task(harness.store, hook)
    async with running_dispatcher(strict):
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
    assert not callback_receiver.requests and "refused" in info.last_error and info.attempts == 1
    # Allow-listed by name: delivered.
    await harness.store.resend(task_id)
    async with running_dispatcher(strict.with_overrides(ssrf={"allow_hosts": ["localhost"]})):
        await received(callback_receiver, 1)
        await harness.wait_state(task_id, task_pb2.DELIVERED)


async def test_literal_internal_callback_is_refused_at_delivery(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    strict = settings.with_overrides(ssrf={"allow_cidrs": [], "allow_hosts": []})
    task_id = await finished_task(harness.store, callback_receiver.url)  # 127.0.0.1
    async with running_dispatcher(strict):
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
    assert not callback_receiver.requests and "refused" in info.last_error


async def test_redirect_is_not_followed(settings: Settings, callback_receiver, harness: Harness) -> None:
    callback_receiver.respond(307, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    task_id = await finished_task(harness.store, callback_receiver.url)
    async with running_dispatcher(settings):
        await received(callback_receiver, 1)
        info = await harness.wait_state(task_id, task_pb2.EXHAUSTED)
    assert info.last_status_code == 307 and len(callback_receiver.requests) == 1


async def test_expired_task_leaves_the_schedule(
    settings: Settings, callback_receiver, harness: Harness
) -> None:
    task_id = await finished_task(harness.store, callback_receiver.url)
    await harness.redis.delete(harness.keys.task(task_id))
    async with running_dispatcher(settings):
        for _ in range(40):
            if not await harness.scheduled():
                break
            await asyncio.sleep(0.05)
    assert await harness.scheduled() == [] and not callback_receiver.requests
    assert not await harness.redis.exists(harness.keys.task(task_id))  # not re-created by the dispatcher
