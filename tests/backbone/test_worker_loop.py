"""The worker loop's Redis traffic: the consumer group is created once, not on every read."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from grpc_server.worker import Worker
from pipelines.registry import LoadedPipelines
from tests.conftest import RedisServer, make_settings


async def _calls(redis: aioredis.Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_consumer_group_is_created_once(redis_server: RedisServer) -> None:
    settings = make_settings(redis_server.url, worker={"block_ms": 10})
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        creates, reads = await _calls(redis, "xgroup|create"), await _calls(redis, "xreadgroup")
        worker = Worker(settings, redis, LoadedPipelines())
        loop = asyncio.create_task(worker.run())
        # Wait for many empty reads (counted by Redis itself), then stop the worker.
        while await _calls(redis, "xreadgroup") - reads < 20:
            await asyncio.sleep(0.01)
        worker.stopping.set()
        await loop
        assert await _calls(redis, "xgroup|create") - creates == 1
    finally:
        await redis.aclose()
