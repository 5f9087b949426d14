"""The job queue: a Redis Stream read by the consumer group `workers`.

A job is a stream entry {task_id}. Workers XREADGROUP new entries, XACK+XDEL them only after the
task's final state is stored, and XAUTOCLAIM entries idle longer than visibility_timeout_s (their
worker died). How often a task was taken is counted on the task itself (store.mark_running), which
is what the delivery cap (12005) reads. XLEN is therefore the number of jobs not yet finished: the
queue-length cap (10007) is checked against it when a task is created (store.create), in the same
script as the XADD; there is deliberately no XADD MAXLEN trimming, which would drop unprocessed jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from grpc_server.keys import CONSUMER_GROUP, Keys


@dataclass(frozen=True)
class Job:
    entry_id: bytes
    task_id: str


class JobQueue:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (from the start: no job is skipped)."""
        try:
            await self.redis.xgroup_create(self.keys.jobs, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, block_ms: int) -> Job | None:
        """The next new job for this consumer, waiting up to block_ms; None when there is none."""
        answer = await self.redis.xreadgroup(
            CONSUMER_GROUP, consumer, {self.keys.jobs: ">"}, count=1, block=block_ms
        )
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                return Job(entry_id=entry_id, task_id=fields[b"task_id"].decode())
        return None

    async def claim_stale(self, consumer: str, min_idle_s: float, count: int = 1) -> list[Job]:
        """Take over jobs whose worker has not acknowledged them for min_idle_s (XAUTOCLAIM)."""
        _next, entries, *_ = await self.redis.xautoclaim(
            self.keys.jobs, CONSUMER_GROUP, consumer, int(min_idle_s * 1000), start_id="0-0", count=count
        )
        return [
            Job(entry_id=entry_id, task_id=fields[b"task_id"].decode())
            for entry_id, fields in entries
            if fields  # a deleted entry comes back empty
        ]

    async def keep(self, job: Job, consumer: str) -> None:
        """Reset the job's idle time (XCLAIM JUSTID, which does not count a delivery), so that a
        live worker on a long task is not mistaken for a dead one."""
        await self.redis.xclaim(self.keys.jobs, CONSUMER_GROUP, consumer, 0, [job.entry_id], justid=True)

    async def ack(self, job: Job) -> None:
        """Done with the job: acknowledge and delete, so that XLEN counts only open jobs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.jobs, CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self.keys.jobs, job.entry_id)
            await pipe.execute()

    async def requeue(self, job: Job) -> None:
        """Hand the job back at once (graceful stop): a new entry, the old one acknowledged."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.jobs, {"task_id": job.task_id})
            pipe.xack(self.keys.jobs, CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self.keys.jobs, job.entry_id)
            await pipe.execute()

    async def dead_letter(self, job: Job, deliveries: int, reason: str) -> None:
        """Copy the job to the dead-letter stream and take it off the queue."""
        async with self.redis.pipeline(transaction=True) as pipe:
            entry = {"task_id": job.task_id, "deliveries": deliveries, "reason": reason}
            pipe.xadd(self.keys.dead_letter, entry)
            pipe.xack(self.keys.jobs, CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self.keys.jobs, job.entry_id)
            await pipe.execute()

    async def depth(self) -> int:
        return int(await self.redis.xlen(self.keys.jobs))

    async def dead_letter_depth(self) -> int:
        return int(await self.redis.xlen(self.keys.dead_letter))
