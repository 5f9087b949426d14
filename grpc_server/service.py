"""AnalysisService (CONTRACT.md section 2): validate, store and queue; read, watch, cancel, resend."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError

from dentalai.config import Settings
from dentalai.contract import FINAL_STATUSES
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.logs import task_context
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.artifact_rpc import get_artifact
from grpc_server.artifact_store import ArtifactStore
from grpc_server.keys import Keys
from grpc_server.queue import JobQueue
from grpc_server.status import abort
from grpc_server.store import CreateOutcome, TaskStore, now_ts
from grpc_server.validation import validate_submission

log = logging.getLogger(__name__)
R = TypeVar("R")


def submission_hash(request: pb.SubmitAnalysisRequest, image: bytes | None) -> str:
    """What decides "same body" for an idempotent taskId: the whole request, image included.

    The image bytes are hashed as they are, beside the rest of the request serialized
    deterministically, so a 20 MiB upload is not serialized a second time just to be hashed."""
    rest = pb.SubmitAnalysisRequest()
    for field, value in request.ListFields():  # every field but the image, without copying it
        if field.name == "image_data":
            continue
        if field.message_type is not None:
            getattr(rest, field.name).CopyFrom(value)
        else:
            setattr(rest, field.name, value)
    head = rest.SerializeToString(deterministic=True)
    digest = hashlib.sha256(len(head).to_bytes(8, "big") + head)
    if image is not None:
        digest.update(image)
    return _HASH_VERSION + digest.hexdigest()


_HASH_VERSION = "v2:"


def legacy_hash(stored: str, request: pb.SubmitAnalysisRequest) -> str:
    """The hash a task stored before submission_hash had (no version prefix), for a resubmission
    across the upgrade; computed only on that rare path."""
    if stored.startswith(_HASH_VERSION):
        return ""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def unavailable() -> DentalAIError:
    return DentalAIError(ErrorCode.QUEUE_UNAVAILABLE, "task store unreachable; nothing was accepted")


def rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Turns DentalAIError into its rich status, Redis failures into 10008, anything else into 13001."""

    @wraps(method)
    async def wrapper(self: AnalysisService, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except DentalAIError as exc:
            await abort(context, exc)
        except (RedisError, OSError):
            log.warning("redis unreachable in %s", method.__name__)
            await abort(context, unavailable())
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            await abort(context, DentalAIError(ErrorCode.INTERNAL, "internal error"))
        raise AssertionError("unreachable")

    return wrapper


class AnalysisService(pb_grpc.AnalysisServiceServicer):
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.queue = JobQueue(redis, self.keys)
        self.artifacts = ArtifactStore(redis, self.keys, settings.tasks.result_ttl_s)

    @rpc
    async def SubmitAnalysis(  # noqa: N802 (gRPC method names)
        self, request: pb.SubmitAnalysisRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitAnalysisResponse:
        task = await self._submit(request)
        return pb.SubmitAnalysisResponse(task_id=task.task_id, status=task.status)

    @rpc
    async def GetTask(  # noqa: N802
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTaskResponse:
        return pb.GetTaskResponse(task=await self._get(request.task_id))

    async def WatchTask(  # noqa: N802
        self, request: pb.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        # A generator cannot use @rpc: errors are mapped here.
        try:
            last: int | None = None
            while True:
                task = await self._get(request.task_id)
                if task.status != last:
                    last = task.status
                    yield pb.WatchTaskResponse(task=task)
                if task.status in FINAL_STATUSES:
                    return
                await asyncio.sleep(self.settings.tasks.watch_poll_s)
        except DentalAIError as exc:
            await abort(context, exc)
        except (RedisError, OSError):
            await abort(context, unavailable())

    @rpc
    async def CancelTask(  # noqa: N802
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        with task_context(request.task_id):
            task = await self.store.cancel(request.task_id)
            log.info("task cancelled")
        return pb.CancelTaskResponse(task=task)

    @rpc
    async def Analyze(  # noqa: N802
        self, request: pb.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnalyzeResponse:
        # Waits until final; the caller's deadline ends the wait (DEADLINE_EXCEEDED), not the task.
        task = await self._submit(request.request)
        while task.status not in FINAL_STATUSES:
            await asyncio.sleep(self.settings.tasks.watch_poll_s)
            task = await self._get(task.task_id)
        return pb.AnalyzeResponse(task=task)

    @rpc
    async def ResendCallback(  # noqa: N802
        self, request: pb.ResendCallbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResendCallbackResponse:
        with task_context(request.task_id):
            task = await self.store.resend(request.task_id)
            log.info("callback re-armed")
        return pb.ResendCallbackResponse(task=task)

    @rpc
    async def GetArtifact(  # noqa: N802
        self, request: pb.GetArtifactRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetArtifactResponse:
        return await get_artifact(self.store, self.artifacts, request.task_id, request.name)

    async def GetServiceStatus(  # noqa: N802
        self, request: pb.GetServiceStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServiceStatusResponse:
        try:
            return await self._service_status()
        except (RedisError, OSError):
            return pb.GetServiceStatusResponse(store_reachable=False, ready=False)

    # ---- helpers -------------------------------------------------------------------------------

    async def _get(self, task_id: str) -> task_pb2.Task:
        task = await self.store.get(task_id) if task_id else None
        if task is None:
            raise DentalAIError(ErrorCode.TASK_NOT_FOUND, f"task {task_id[:64]!r} not found")
        return task

    async def _submit(self, request: pb.SubmitAnalysisRequest) -> task_pb2.Task:
        validate_submission(request, self.settings)
        task_id = request.task_id or uuid.uuid4().hex
        image = request.image_data if request.WhichOneof("image") == "image_data" else None
        request_hash = submission_hash(request, image)
        task = task_pb2.Task(
            task_id=task_id,
            task_type=request.task_type,
            status=task_pb2.QUEUED,
            created_at=now_ts(),
            callback=task_pb2.CallbackInfo(url=request.callback_url, state=task_pb2.NOT_DUE),
        )
        if request.HasField("metadata"):
            task.metadata.CopyFrom(request.metadata)
        task.options.CopyFrom(request.options)
        if task.options.tooth_numbering == 0:
            task.options.tooth_numbering = results_pb2.FDI
        with task_context(task_id):
            outcome, existing_hash = await self.store.create(
                task,
                image,
                request.image_url,
                request_hash,
                self.settings.limits.queue_max_length,
            )
            if outcome == CreateOutcome.FULL:
                raise DentalAIError(ErrorCode.QUEUE_FULL, "queue full; retry later")
            if outcome == CreateOutcome.EXISTS:
                if existing_hash != request_hash and existing_hash != legacy_hash(existing_hash, request):
                    raise DentalAIError(
                        ErrorCode.TASK_ID_CONFLICT, f"taskId {task_id} already used with a different body"
                    )
                log.info("resubmission of an existing task")
                return await self._get(task_id)
            log.info("task queued", extra={"taskType": task.task_type})
            return task

    async def _service_status(self) -> pb.GetServiceStatusResponse:
        await self.redis.ping()
        reply = pb.GetServiceStatusResponse(store_reachable=True)
        reply.queue_depth = await self.queue.depth()
        reply.dead_letter_depth = await self.queue.dead_letter_depth()
        for status, count in (await self.redis.hgetall(self.keys.task_stats)).items():
            reply.tasks_by_status[status.decode()] = max(0, int(count))
        prefix = self.keys.callback_stat("")
        async for key in self.redis.scan_iter(match=self.keys.callback_stat_pattern):
            value = await self.redis.get(key)
            if value is not None:
                reply.callback_attempts[key.decode()[len(prefix):]] = int(value)
        keys = [k async for k in self.redis.scan_iter(match=self.keys.worker_pattern)]
        now = time.time()
        for raw in await self.redis.mget(keys) if keys else []:
            if raw is None:
                continue
            try:
                beat = pb.WorkerInfo.FromString(raw)
            except DecodeError:
                continue  # not a heartbeat of this version; it expires on its own
            reply.workers.append(beat)
            fresh = now - beat.last_seen.ToNanoseconds() / 1e9 <= self.settings.worker.heartbeat_ttl_s
            if beat.models and fresh:
                reply.ready = True
        return reply
