"""A finished task's artifacts in Redis: one hash per task (keys.Keys.artifacts), field = file
name (artifacts.kinds), value = the file. Written by the worker before the task is finished (so
before its callback is scheduled), with the task's TTL; read by GetArtifact.

The hash is written whole in one MULTI/EXEC, so a reader sees all artifacts of a run or none.
A task taken over by a second worker overwrites the first run's files with its own.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from grpc_server.keys import Keys


class ArtifactStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    async def put(self, task_id: str, files: dict[str, bytes]) -> None:
        key = self.keys.artifacts(task_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if files:
                pipe.hset(key, mapping=files)  # type: ignore[arg-type]
                # A little longer than the task (whose TTL restarts at finish, just after this):
                # the routes check the task first, so a lingering hash is never served.
                pipe.expire(key, self.ttl_s + 60)
            await pipe.execute()

    async def get(self, task_id: str, name: str) -> bytes | None:
        value = await self.redis.hget(self.keys.artifacts(task_id), name)
        return bytes(value) if value is not None else None
