"""The Redis client every process uses (redis.asyncio, bytes in and out): one Redis by its URL, or
the master of a Sentinel-managed group (settings.redis.sentinels).

With Sentinels, every new connection asks them for the current master (redis-py's
SentinelConnectionPool), so a process follows a failover without a restart: a connection to a dead
master fails, one to a demoted master gets READONLY and is dropped, and the next command connects
to whichever node the Sentinels name now. While none is named (the few seconds of an election),
commands raise ConnectionError (MasterNotFoundError), which every caller already treats as an
outage: submissions answer 10008, workers and dispatchers wait and try again.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry as SyncRetry

from dentalai.config import Settings, sentinel_address

# A Sentinel that does not answer within this is skipped for the next one: a dead one must not
# hold up the discovery of the master for a whole socket timeout.
SENTINEL_TIMEOUT_S = 1.0


def _options(settings: Settings) -> dict[str, Any]:
    """Connection options of the data connections. The read timeout leaves room for a blocking
    BLPOP of worker.block_ms and a WAIT of redis.wait_timeout_ms (at most 5 s)."""
    return {
        "socket_connect_timeout": 2,
        "socket_timeout": settings.worker.block_ms / 1000 + 5,
        # A pooled connection left over from before a Redis restart or failover fails once:
        # retry on a fresh one (with Sentinels: to the master they name now).
        "retry_on_error": [RedisConnectionError],
    }


def _sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "password": settings.redis.sentinel_password or None,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }


def _sentinels(settings: Settings) -> list[tuple[str, int]]:
    return [sentinel_address(a) for a in settings.redis.sentinels]


def redis_client(settings: Settings) -> aioredis.Redis:
    """A pooled client; reconnects by itself after an outage, and with Sentinels to the new
    master after a failover."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)
    if settings.redis.sentinels:
        sentinel = aiosentinel.Sentinel(
            _sentinels(settings), sentinel_kwargs=_sentinel_kwargs(settings),
            password=settings.redis.password or None, db=settings.redis.db,
        )  # fmt: skip
        return sentinel.master_for(settings.redis.master_name, retry=retry, **_options(settings))
    if not settings.redis_url:
        raise ValueError("redis_url is empty: set DENTALAI_REDIS_URL or redis.sentinels")
    return aioredis.Redis.from_url(settings.redis_url, retry=retry, **_options(settings))


def sync_redis_client(settings: Settings) -> redis.Redis:
    """The same, blocking (probes, benchmarks, tools)."""
    retry = SyncRetry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)
    if settings.redis.sentinels:
        sentinel = redis.sentinel.Sentinel(
            _sentinels(settings), sentinel_kwargs=_sentinel_kwargs(settings),
            password=settings.redis.password or None, db=settings.redis.db,
        )  # fmt: skip
        return sentinel.master_for(settings.redis.master_name, retry=retry, **_options(settings))
    if not settings.redis_url:
        raise ValueError("redis_url is empty: set DENTALAI_REDIS_URL or redis.sentinels")
    return redis.Redis.from_url(settings.redis_url, retry=retry, **_options(settings))
