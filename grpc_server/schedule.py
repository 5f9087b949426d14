"""A durable delivery schedule in Redis and the loop that works it off: shared by the callback
dispatcher (dispatcher.py) and the exports (exports.py), which differ only in what one attempt does.

The schedule is a sorted set (member = task ref, score = due unix time), written by the task store
when a task finishes or a delivery is re-armed. Each loop:

1. claim: one Lua call takes the due members and re-scores them to now + lease_s, so a second
   dispatcher skips them, and a dispatcher killed mid-delivery leaves them due again later;
2. deliver each claimed task in its own asyncio task (at most `concurrency` at once, so a slow
   receiver holds one slot, never the loop);
3. the subclass settles its attempt (TaskStore.settle_*, one Lua call) only while the member still
   carries its lease score.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from dentalai.logs import task_context
from grpc_server.keys import TaskRef

log = logging.getLogger(__name__)

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""


def stamp(unix: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(unix * 1e9))
    return ts


class ScheduleLoop(ABC):
    """Claims due members of `schedule_key` and runs `deliver(ref, lease)` for each."""

    def __init__(
        self,
        redis: aioredis.Redis,
        schedule_key: str,
        *,
        concurrency: int,
        poll_interval_s: float,
        lease_s: float,
        drain_s: float,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.schedule_key = schedule_key
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self.drain_s = drain_s  # how long a stop waits for the attempts in flight
        # redis.wait_replicas: nothing is sent out before that many replicas hold it (see claim).
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._claim = redis.register_script(_CLAIM)
        self.inflight: set[asyncio.Task[None]] = set()

    # What one attempt delivers, for the log lines ("callback", "export").
    what = "delivery"

    async def deliver(self, ref: TaskRef, lease: str) -> None:
        """One attempt for `ref`, settled under `lease`; never raises."""
        with task_context(ref.task_id, ref.client_id):
            try:
                await self.attempt(ref, lease)
            except (RedisError, OSError) as exc:
                # The lease runs out and the entry is due again: at least once, never lost.
                log.warning("%s not settled (Redis): %s", self.what, exc)
            except Exception:
                log.exception("%s failed unexpectedly", self.what)

    @abstractmethod
    async def attempt(self, ref: TaskRef, lease: str) -> None:
        """One attempt for `ref`, settled under `lease` while the member still carries it."""

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until `stop` is set; then let the attempts in flight finish."""
        while not stop.is_set():
            free = self.concurrency - len(self.inflight)
            claimed: list[tuple[TaskRef, str]] = []
            if free > 0:
                try:
                    claimed = await self.claim(free)
                except (RedisError, OSError) as exc:
                    log.warning("cannot read the schedule %s: %s", self.schedule_key, exc)
            for ref, lease in claimed:
                job = asyncio.create_task(self.deliver(ref, lease))
                self.inflight.add(job)
                job.add_done_callback(self.inflight.discard)
            if claimed and len(claimed) == free:
                continue  # more may be due right now
            await self._pause(stop)
        if self.inflight:
            await asyncio.wait(self.inflight, timeout=self.drain_s)

    async def _pause(self, stop: asyncio.Event) -> None:
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(stop.wait())}
        if self.concurrency - len(self.inflight) <= 0:
            waiters |= set(self.inflight)  # full: wake when a slot frees
        done, pending = await asyncio.wait(
            waiters, timeout=self.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            if waiter not in self.inflight:
                waiter.cancel()

    async def claim(self, count: int) -> list[tuple[TaskRef, str]]:
        """Due tasks with the lease score they now carry.

        With wait_replicas, the claim's WAIT (same pipeline, same connection) must see that many
        replicas acknowledge it, and with it everything written before it, the task's final state
        included: a callback never announces a result that a failover could still take back (and
        rerun under a new webhook-id). Unconfirmed, nothing is delivered now; the leases run out
        and the members are due again."""
        now = time.time()
        lease = repr(now + self.lease_s)
        args = [repr(now), lease, count]
        if not self.wait_replicas:
            members = await self._claim(keys=[self.schedule_key], args=args)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._claim(keys=[self.schedule_key], args=args, client=pipe)
                pipe.wait(self.wait_replicas, self.wait_timeout_ms)
                members, acked = await pipe.execute()
            if members and acked < self.wait_replicas:
                log.warning("%d due on %s held: no replica confirmed them", len(members), self.schedule_key)
                return []
        return [(TaskRef.parse(m), lease) for m in members]
