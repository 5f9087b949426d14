"""The job queue: one Redis Stream per client, read by the consumer group `workers`, taken in turn.

A job is a stream entry {task: ref} in its client's stream (keys.Keys.queue). store.create adds it
(with the per-client and the total cap, 10007) in the same script that writes the task, registers
the client in the rotation on its first job and pushes a wake token.

Fairness: `read` runs one script that walks the rotation list, moving each client it looks at to
the tail, and takes the first new entry it finds. A client whose job was just taken is therefore
looked at last next time, an idle client stays ahead of the busy ones, and a new client joins at
the head: with a backlog of 200 from A, B's one job is the next job any worker takes. Every client
gets one job per turn, whatever its backlog (round robin: deficit round robin with all quanta equal
and every job counted as one).

Each guarantee of the single stream holds per stream: workers XACK+XDEL only after the task's final
state is stored; `claim_stale` XAUTOCLAIMs entries idle longer than visibility_timeout_s (their
worker died) in every client's stream; deliveries are counted on the task (store.mark_running,
the 12005 cap); XLEN of a client's stream is its open jobs (no MAXLEN trimming, which would drop
unprocessed jobs). Cancelling marks the task; the worker skips its job.

Idle workers wait on the wake list (BLPOP, block_ms) instead of a blocking XREADGROUP, which cannot
wait on a set of streams that grows; a missed token costs at most block_ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from grpc_server.keys import CONSUMER_GROUP, Keys, TaskRef

# Wake tokens kept at most: enough for every idle worker of a large deployment to wake at once.
WAKE_TOKENS = 256

# The turn: for each client in the rotation (moved to the tail as it is looked at), the next new
# entry of its stream. A stream whose group is gone (a Redis that lost it) gets it back from id 0.
# KEYS: rotation. ARGV: queue key prefix, group, consumer. Returns {entry id, ref} or false.
_TAKE = """
local n = redis.call('LLEN', KEYS[1])
for _ = 1, n do
  local client = redis.call('LMOVE', KEYS[1], KEYS[1], 'LEFT', 'RIGHT')
  local stream = ARGV[1] .. client
  local read = {'XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', 1, 'STREAMS', stream, '>'}
  local ok, got = pcall(redis.call, unpack(read))
  if not ok then
    pcall(redis.call, 'XGROUP', 'CREATE', stream, ARGV[2], '0', 'MKSTREAM')
    got = redis.call(unpack(read))
  end
  if got and got[1] and got[1][2][1] then
    local entry = got[1][2][1]
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'task' then return {entry[1], fields[i + 1]} end
    end
    return {entry[1], ''}
  end
end
return false
"""


@dataclass(frozen=True)
class Job:
    entry_id: bytes
    ref: TaskRef

    @property
    def task_id(self) -> str:
        return self.ref.task_id


class JobQueue:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._take = redis.register_script(_TAKE)

    async def read(self, consumer: str, block_ms: int) -> Job | None:
        """The next job in the clients' turn; when there is none, wait up to block_ms for a wake
        token and look once more. None when there is still none."""
        job = await self._take_one(consumer)
        if job is None:
            await self.redis.blpop([self.keys.queue_wake], timeout=block_ms / 1000)
            job = await self._take_one(consumer)
        return job

    async def _take_one(self, consumer: str) -> Job | None:
        got = await self._take(
            keys=[self.keys.queue_rotation], args=[self.keys.queue_prefix, CONSUMER_GROUP, consumer]
        )
        if not got:
            return None
        entry_id, ref = got
        return Job(entry_id=entry_id, ref=TaskRef.parse(ref))

    async def clients(self) -> list[str]:
        return [c.decode() for c in await self.redis.lrange(self.keys.queue_rotation, 0, -1)]

    async def claim_stale(self, consumer: str, min_idle_s: float, count: int = 1) -> list[Job]:
        """Take over jobs whose worker has not acknowledged them for min_idle_s (XAUTOCLAIM), from
        the clients' streams in rotation order."""
        jobs: list[Job] = []
        for client in await self.clients():
            _next, entries, *_ = await self.redis.xautoclaim(
                self.keys.queue(client), CONSUMER_GROUP, consumer, int(min_idle_s * 1000),
                start_id="0-0", count=count - len(jobs),
            )
            # A deleted entry comes back empty.
            jobs += [Job(entry_id=e, ref=TaskRef.parse(f[b"task"])) for e, f in entries if f]
            if len(jobs) >= count:
                break
        return jobs

    async def keep(self, job: Job, consumer: str) -> None:
        """Reset the job's idle time (XCLAIM JUSTID, which does not count a delivery), so that a
        live worker on a long task is not mistaken for a dead one."""
        await self.redis.xclaim(self._stream(job), CONSUMER_GROUP, consumer, 0, [job.entry_id], justid=True)

    async def ack(self, job: Job) -> None:
        """Done with the job: acknowledge and delete, so that XLEN counts only open jobs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream(job), CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self._stream(job), job.entry_id)
            await pipe.execute()

    async def requeue(self, job: Job) -> None:
        """Hand the job back at once (graceful stop): a new entry, the old one acknowledged."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._stream(job), {"task": str(job.ref)})
            pipe.xack(self._stream(job), CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self._stream(job), job.entry_id)
            pipe.lpush(self.keys.queue_wake, b"1")
            pipe.ltrim(self.keys.queue_wake, 0, WAKE_TOKENS - 1)
            await pipe.execute()

    async def dead_letter(self, job: Job, deliveries: int, reason: str) -> None:
        """Copy the job to the dead-letter stream and take it off the queue."""
        async with self.redis.pipeline(transaction=True) as pipe:
            entry = {"task": str(job.ref), "deliveries": deliveries, "reason": reason}
            pipe.xadd(self.keys.dead_letter, entry)
            pipe.xack(self._stream(job), CONSUMER_GROUP, job.entry_id)
            pipe.xdel(self._stream(job), job.entry_id)
            await pipe.execute()

    async def depth(self, client_id: str | None = None) -> int:
        """Open jobs of one client, or of all."""
        clients = [client_id] if client_id is not None else await self.clients()
        if not clients:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for client in clients:
                pipe.xlen(self.keys.queue(client))
            return sum(int(n) for n in await pipe.execute())

    async def dead_letter_depth(self) -> int:
        return int(await self.redis.xlen(self.keys.dead_letter))

    def _stream(self, job: Job) -> str:
        return self.keys.queue(job.ref.client_id)
