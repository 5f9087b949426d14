"""A finished task's artifacts in Redis: one hash per task (keys.Keys.artifacts), field = file
name (artifacts.kinds), value = the file. Written by the worker before the task is finished (so
before its callback is scheduled), with the task's TTL; read by GetArtifact.

The hash is written whole in one MULTI/EXEC, so a reader sees all artifacts of a run or none.
A task taken over by a second worker overwrites the first run's files with its own.

A file that deflates well is kept deflated, under its name + PACKED (the SR: 71 kB -> 8 kB for a
pano; the PNG, JPEG-based and JPEG-LS files gain under 2 % and are kept as they are), and served
inflated: the bytes a route answers are the file. Whether a file deflates well is read from its
first SAMPLE bytes, so the files that do not cost no compression of their own.
"""

from __future__ import annotations

import asyncio
import zlib

import redis.asyncio as aioredis

from grpc_server.keys import Keys, TaskRef

PACKED = "@zlib"  # field suffix of a deflated file (no artifact name contains "@")
SAMPLE = 16384
WORTH = 0.8  # kept deflated when its sample deflates to under this fraction


def pack(files: dict[str, bytes]) -> dict[str, bytes]:
    """The hash's fields: each file as it is, or deflated under its name + PACKED."""
    out = {}
    for name, data in files.items():
        if len(data) > 1024 and len(zlib.compress(data[:SAMPLE], 1)) < WORTH * min(len(data), SAMPLE):
            out[name + PACKED] = zlib.compress(data, 6)
        else:
            out[name] = data
    return out


class ArtifactStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    async def put(self, ref: TaskRef, files: dict[str, bytes]) -> None:
        key = self.keys.artifacts(ref)
        fields = await asyncio.to_thread(pack, files) if files else {}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if fields:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                # A little longer than the task (whose TTL restarts at finish, just after this):
                # the routes check the task first, so a lingering hash is never served.
                pipe.expire(key, self.ttl_s + 60)
            await pipe.execute()

    async def get(self, ref: TaskRef, name: str) -> bytes | None:
        value, packed = await self.redis.hmget(self.keys.artifacts(ref), [name, name + PACKED])
        if packed is not None:
            return zlib.decompress(packed)
        return bytes(value) if value is not None else None
