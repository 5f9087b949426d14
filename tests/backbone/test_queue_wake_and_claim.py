"""The queue's wake tokens, takeover and dead letters against a real redis-server: what the fair
queue tests leave out and mutation testing (tools/mutants.yaml) showed unguarded.

- every new job (and every job handed back) leaves one wake token, and the wake list stays bounded;
- a new client's stream can be scanned for stale jobs before any worker has read it;
- a job held by a live worker is not taken over, and keep() resets its idle time;
- a dead-lettered job is recorded with its deliveries and leaves its client's stream;
- an idle read waits block_ms, not block_ms seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server.connection import redis_client
from grpc_server.keys import CONSUMER_GROUP, Keys, TaskRef
from grpc_server.queue import WAKE_TOKENS, JobQueue
from grpc_server.store import CreateOutcome, TaskStore, now_ts


class Parts:
    def __init__(self, settings: Settings) -> None:
        self.redis = redis_client(settings)
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(self.redis, self.keys, 600)
        self.queue = JobQueue(self.redis, self.keys)

    async def submit(self, client: str, task_id: str) -> None:
        task = task_pb2.Task(task_id=task_id, task_type="pano", status=task_pb2.QUEUED, created_at=now_ts())
        outcome, _ = await self.store.create(TaskRef(client, task_id), task, b"img", "", "h", 10_000, 10_000)
        assert outcome == CreateOutcome.CREATED

    async def wake_tokens(self) -> int:
        return int(await self.redis.llen(self.keys.queue_wake))


@pytest.fixture
async def parts(settings: Settings) -> AsyncIterator[Parts]:
    p = Parts(settings)
    yield p
    await p.redis.aclose()


async def test_each_new_job_leaves_a_wake_token_and_the_list_stays_bounded(parts: Parts) -> None:
    await parts.submit("a", "t0")
    assert await parts.wake_tokens() == 1
    for i in range(1, WAKE_TOKENS + 20):
        await parts.submit("a", f"t{i}")
    assert await parts.wake_tokens() == WAKE_TOKENS  # one per job, at most WAKE_TOKENS kept


async def test_a_job_handed_back_wakes_an_idle_worker(parts: Parts) -> None:
    await parts.submit("a", "held")
    job = await parts.queue.read("w1", 10)
    assert job is not None
    await parts.redis.delete(parts.keys.queue_wake)  # the token was used by whoever woke
    await parts.queue.requeue(job)
    assert await parts.wake_tokens() == 1
    again = await parts.queue.read("w2", 10)
    assert again is not None and again.ref == TaskRef("a", "held")


async def test_a_new_clients_stream_can_be_scanned_for_stale_jobs_before_any_read(parts: Parts) -> None:
    """A worker's first step is a takeover scan of every client's stream; a client whose first job
    arrived a moment ago must not make it fail (its stream has the consumer group from the start)."""
    await parts.submit("new-client", "t0")
    assert await parts.queue.claim_stale("w1", min_idle_s=0.01) == []
    groups = await parts.redis.xinfo_groups(parts.keys.queue("new-client"))
    assert [g["name"] for g in groups] == [CONSUMER_GROUP.encode()]


async def test_a_job_held_by_a_live_worker_is_not_taken_over(parts: Parts) -> None:
    await parts.submit("a", "t0")
    job = await parts.queue.read("live", 10)
    assert job is not None
    assert await parts.queue.claim_stale("other", min_idle_s=30) == []
    pending = await parts.redis.xpending(parts.keys.queue("a"), CONSUMER_GROUP)
    assert pending["consumers"] == [{"name": b"live", "pending": 1}]


async def test_keep_resets_the_idle_time(parts: Parts) -> None:
    await parts.submit("a", "long")
    job = await parts.queue.read("live", 10)
    assert job is not None
    await asyncio.sleep(0.3)
    await parts.queue.keep(job, "live")
    assert await parts.queue.claim_stale("other", min_idle_s=0.2) == []  # idle for ~0 s now
    await asyncio.sleep(0.3)
    taken = await parts.queue.claim_stale("other", min_idle_s=0.2)  # without keep: taken over
    assert [j.ref for j in taken] == [TaskRef("a", "long")]


async def test_ack_leaves_nothing_open_or_pending(parts: Parts) -> None:
    await parts.submit("a", "t0")
    job = await parts.queue.read("w", 10)
    assert job is not None
    await parts.queue.ack(job)
    stream = parts.keys.queue("a")
    assert await parts.redis.xlen(stream) == 0
    assert (await parts.redis.xpending(stream, CONSUMER_GROUP))["pending"] == 0


async def test_a_dead_lettered_job_is_recorded_and_leaves_the_queue(parts: Parts) -> None:
    await parts.submit("a", "poison")
    job = await parts.queue.read("w", 10)
    assert job is not None
    await parts.queue.dead_letter(job, 3, "max_deliveries")
    [(_, fields)] = await parts.redis.xrange(parts.keys.dead_letter)
    assert fields == {b"task": b"a/poison", b"deliveries": b"3", b"reason": b"max_deliveries"}
    assert await parts.queue.dead_letter_depth() == 1
    stream = parts.keys.queue("a")
    assert await parts.redis.xlen(stream) == 0
    assert (await parts.redis.xpending(stream, CONSUMER_GROUP))["pending"] == 0


async def test_an_idle_read_waits_block_ms(parts: Parts) -> None:
    started = time.monotonic()
    assert await asyncio.wait_for(parts.queue.read("w", 100), 10) is None
    assert time.monotonic() - started < 2
