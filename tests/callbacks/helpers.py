"""Finished tasks in a real Redis (through the real task store) and an in-process dispatcher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from google.protobuf import json_format, struct_pb2

from dentalai.config import Settings
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.connection import redis_client
from grpc_server.dispatcher import Dispatcher
from grpc_server.keys import Keys, TaskRef
from grpc_server.store import TaskStore, now_ts

CLIENT = "clinic"
# The callback body's fields, from CONTRACT.md section 4 (written out here, not taken from the code).
CALLBACK_FIELDS = {
    "taskId", "taskType", "status", "code", "message", "data", "metadata", "model", "timing", "completedAt",
}


async def finished_task(
    store: TaskStore, hook: str, failed: bool = False, metadata: dict | None = None
) -> TaskRef:
    """Create, run and finish a pano task of client CLIENT whose callback goes to `hook`."""
    task_id = f"t-{uuid.uuid4().hex[:12]}"
    ref = TaskRef(CLIENT, task_id)
    task = task_pb2.Task(
        task_id=task_id, task_type="pano", status=task_pb2.QUEUED, created_at=now_ts(),
        callback=task_pb2.CallbackInfo(url=hook, state=task_pb2.NOT_DUE),
    )
    if metadata is not None:
        task.metadata.CopyFrom(json_format.ParseDict(metadata, struct_pb2.Struct()))
    await store.create(ref, task, b"img", "", "h", 1000, 1000)
    await store.mark_running(ref, 3)
    model = results_pb2.ModelInfo(name="pano-teeth", version="1.0.0")
    if failed:
        await store.finish(ref, error=task_pb2.TaskError(code=11002, message="not an image"), model=model)
    else:
        result = results_pb2.PanoResult(image=results_pb2.PanoImage(width=640, height=320))
        await store.finish(ref, result=result, model=model)
    return ref


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client(settings)
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(self.redis, self.keys, settings.tasks.result_ttl_s)

    async def callback(self, ref: TaskRef) -> task_pb2.CallbackInfo:
        task = await self.store.get(ref)
        assert task is not None
        return task.callback

    async def wait_state(self, ref: TaskRef, state: int, timeout: float = 10) -> task_pb2.CallbackInfo:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            info = await self.callback(ref)
            if info.state == state:
                return info
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"callback {task_pb2.CallbackState.Name(info.state)}: {info}")
            await asyncio.sleep(0.05)

    async def stats(self) -> dict[str, int]:
        out = {}
        for outcome in ("delivered", "retry", "failed", "exhausted"):
            value = await self.redis.get(self.keys.callback_stat(outcome))
            out[outcome] = int(value or 0)
        return out

    async def scheduled(self) -> list[str]:
        return [m.decode() for m in await self.redis.zrange(self.keys.callback_schedule, 0, -1)]


@asynccontextmanager
async def running_loop(settings: Settings, loop_cls: Any, stop_timeout_s: float = 15.0) -> AsyncIterator[Any]:
    """A ScheduleLoop of `loop_cls` (the Dispatcher, the Exporter) running in this event loop on its
    own Redis client; stopped as its process stops it (the attempts in flight finish)."""
    redis = redis_client(settings)
    loop = loop_cls(settings, redis)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(loop.run(stop))
    try:
        yield loop
    finally:
        stop.set()
        await asyncio.wait_for(loop_task, stop_timeout_s)
        await loop.aclose()
        await redis.aclose()


@asynccontextmanager
async def running_dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    async with running_loop(settings, Dispatcher) as dispatcher:
        yield dispatcher


async def received(receiver, count: int, timeout: float = 10):  # noqa: ANN001, ANN201
    """Wait (without blocking the event loop) for `count` requests at the receiver."""
    return await asyncio.to_thread(receiver.wait_for, count, timeout)
