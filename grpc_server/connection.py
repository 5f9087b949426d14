"""The Redis client every process uses (redis.asyncio, bytes in and out)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from dentalai.config import Settings


def redis_client(settings: Settings) -> aioredis.Redis:
    """A pooled client; reconnects by itself after an outage. The read timeout leaves room for a
    blocking XREADGROUP of worker.block_ms."""
    if not settings.redis_url:
        raise ValueError("redis_url is empty: set DENTALAI_REDIS_URL (`dentalai up` starts a local redis)")
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=settings.worker.block_ms / 1000 + 5,
        # A pooled connection left over from before a Redis restart fails once: retry on a fresh one.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError],
    )
