"""The worker loop's Redis traffic: an idle worker takes (one script call) and then waits on the
wake list (one BLPOP of block_ms), and never creates consumer groups while idle."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from grpc_server.worker import Worker
from pipelines.registry import LoadedPipelines
from tests.conftest import RedisServer, make_settings


async def _calls(redis: aioredis.Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_idle_worker_waits_on_the_wake_list(redis_server: RedisServer) -> None:
    settings = make_settings(redis_server.url, worker={"block_ms": 20})
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        before = {c: await _calls(redis, c) for c in ("xgroup|create", "blpop", "evalsha")}
        worker = Worker(settings, redis, LoadedPipelines())
        loop = asyncio.create_task(worker.run())
        while await _calls(redis, "blpop") - before["blpop"] < 10:
            await asyncio.sleep(0.01)
        worker.stopping.set()
        await loop
        blpops = await _calls(redis, "blpop") - before["blpop"]
        takes = await _calls(redis, "evalsha") - before["evalsha"]
        assert await _calls(redis, "xgroup|create") == before["xgroup|create"]
        # One take before each wait and one after it: no busy loop between waits.
        assert blpops <= takes <= 2 * blpops + 2
    finally:
        await redis.aclose()
