"""AnalysisService (CONTRACT.md section 2): validate, store and queue; read, watch, cancel, resend."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError

from dentalai.config import ClientSettings, Settings
from dentalai.contract import FINAL_STATUSES
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.logs import task_context
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import task_pb2
from grpc_server.artifact_rpc import get_artifact
from grpc_server.artifact_store import ArtifactStore
from grpc_server.clients import Clients
from grpc_server.keys import Keys, TaskRef
from grpc_server.queue import JobQueue
from grpc_server.status import abort, unauthenticated
from grpc_server.store import TaskStore, not_found
from grpc_server.submission import accept

log = logging.getLogger(__name__)
audit_log = logging.getLogger("dentalai.audit")
R = TypeVar("R")


def ref_of(client: ClientSettings, task_id: str) -> TaskRef:
    """The task a caller names: always one of its own client's (keys.TaskRef)."""
    return TaskRef(client.id, task_id)


def unavailable() -> DentalAIError:
    return DentalAIError(ErrorCode.QUEUE_UNAVAILABLE, "task store unreachable; nothing was accepted")


def rpc(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Resolves the caller's client and passes it on; writes the access's audit line; turns
    DentalAIError into its rich status, Redis failures into 10008, anything else into 13001."""

    @wraps(method)
    async def wrapper(self: AnalysisService, request: Any, context: grpc.aio.ServicerContext) -> R:
        client = self.clients.resolve(context.invocation_metadata())
        outcome, task_id = "ok", _request_task_id(request)
        try:
            if client is None:  # the interceptor refused it already; never reached in practice
                raise unauthenticated()
            reply = await method(self, request, context, client)
            task_id = task_id or _reply_task_id(reply)
            return reply
        except DentalAIError as exc:
            outcome = str(int(exc.code))
            await abort(context, exc)
        except (RedisError, OSError):
            outcome = str(int(ErrorCode.QUEUE_UNAVAILABLE))
            log.warning("redis unreachable in %s", method.__name__)
            await abort(context, unavailable())
        except (asyncio.CancelledError, grpc.aio.AbortError):
            outcome = "aborted"
            raise
        except Exception:
            outcome = str(int(ErrorCode.INTERNAL))
            log.exception("internal error in %s", method.__name__)
            await abort(context, DentalAIError(ErrorCode.INTERNAL, "internal error"))
        finally:
            audit(client, method.__name__, task_id, outcome)
        raise AssertionError("unreachable")

    return wrapper


def audit(client: ClientSettings | None, route: str, task_id: str, outcome: str) -> None:
    """One line per access: who, which route, which task, how it ended; never patient data."""
    audit_log.info(
        "access",
        extra={
            "clientId": client.id if client else "", "route": route, "taskId": task_id, "outcome": outcome
        },
    )


def _request_task_id(request: Any) -> str:
    inner = getattr(request, "request", request)  # Analyze wraps a SubmitAnalysisRequest
    return str(getattr(inner, "task_id", "") or "")[:64]


def _reply_task_id(reply: Any) -> str:
    task = getattr(reply, "task", None)
    return str(getattr(reply, "task_id", "") or getattr(task, "task_id", "") or "")


class AnalysisService(pb_grpc.AnalysisServiceServicer):
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.clients = Clients(settings.auth)
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.queue = JobQueue(redis, self.keys)
        self.artifacts = ArtifactStore(redis, self.keys, settings.tasks.result_ttl_s)

    @rpc
    async def SubmitAnalysis(  # noqa: N802 (gRPC method names)
        self, request: pb.SubmitAnalysisRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.SubmitAnalysisResponse:
        task = await self._submit(client, request)
        return pb.SubmitAnalysisResponse(task_id=task.task_id, status=task.status)

    @rpc
    async def GetTask(  # noqa: N802
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.GetTaskResponse:
        return pb.GetTaskResponse(task=await self._get(ref_of(client, request.task_id)))

    async def WatchTask(  # noqa: N802
        self, request: pb.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        # A generator cannot use @rpc: the client, the audit line and errors are handled here.
        client = self.clients.resolve(context.invocation_metadata())
        outcome = "ok"
        try:
            if client is None:
                raise unauthenticated()
            ref = ref_of(client, request.task_id)
            last: int | None = None
            while True:
                task = await self._get(ref)
                if task.status != last:
                    last = task.status
                    yield pb.WatchTaskResponse(task=task)
                if task.status in FINAL_STATUSES:
                    return
                await asyncio.sleep(self.settings.tasks.watch_poll_s)
        except DentalAIError as exc:
            outcome = str(int(exc.code))
            await abort(context, exc)
        except (RedisError, OSError):
            outcome = str(int(ErrorCode.QUEUE_UNAVAILABLE))
            await abort(context, unavailable())
        finally:
            audit(client, "WatchTask", request.task_id[:64], outcome)

    @rpc
    async def CancelTask(  # noqa: N802
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.CancelTaskResponse:
        ref = ref_of(client, request.task_id)
        with task_context(ref.task_id, ref.client_id):
            task, erased = await self.store.cancel(ref)
            log.info("task erased" if erased else "task cancelled")
        return pb.CancelTaskResponse(task=task, erased=erased)

    @rpc
    async def Analyze(  # noqa: N802
        self, request: pb.AnalyzeRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.AnalyzeResponse:
        # Waits until final; the caller's deadline ends the wait (DEADLINE_EXCEEDED), not the task.
        task = await self._submit(client, request.request)
        ref = ref_of(client, task.task_id)
        while task.status not in FINAL_STATUSES:
            await asyncio.sleep(self.settings.tasks.watch_poll_s)
            task = await self._get(ref)
        return pb.AnalyzeResponse(task=task)

    @rpc
    async def ResendCallback(  # noqa: N802
        self, request: pb.ResendCallbackRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.ResendCallbackResponse:
        ref = ref_of(client, request.task_id)
        with task_context(ref.task_id, ref.client_id):
            task = await self.store.resend(ref)
            log.info("callback re-armed")
        return pb.ResendCallbackResponse(task=task)

    @rpc
    async def GetArtifact(  # noqa: N802
        self, request: pb.GetArtifactRequest, context: grpc.aio.ServicerContext, client: ClientSettings
    ) -> pb.GetArtifactResponse:
        return await get_artifact(self.store, self.artifacts, ref_of(client, request.task_id), request.name)

    async def GetServiceStatus(  # noqa: N802
        self, request: pb.GetServiceStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServiceStatusResponse:
        try:
            return await self._service_status()
        except (RedisError, OSError):
            return pb.GetServiceStatusResponse(store_reachable=False, ready=False)

    # ---- helpers -------------------------------------------------------------------------------

    async def _get(self, ref: TaskRef) -> task_pb2.Task:
        task = await self.store.get(ref)
        if task is None:
            raise not_found(ref)
        return task

    async def _submit(self, client: ClientSettings, request: pb.SubmitAnalysisRequest) -> task_pb2.Task:
        return (await accept(self.store, self.settings, client, request)).task

    async def _counters(self, into: Any, prefix: str) -> None:
        """The string counters under `prefix` (`{prefix}{outcome}`), by outcome."""
        async for key in self.redis.scan_iter(match=prefix + "*"):
            value = await self.redis.get(key)
            if value is not None:
                into[key.decode()[len(prefix):]] = int(value)

    async def _service_status(self) -> pb.GetServiceStatusResponse:
        await self.redis.ping()
        reply = pb.GetServiceStatusResponse(store_reachable=True)
        reply.queue_depth = await self.queue.depth()
        reply.dead_letter_depth = await self.queue.dead_letter_depth()
        for status, count in (await self.redis.hgetall(self.keys.task_stats)).items():
            reply.tasks_by_status[status.decode()] = max(0, int(count))
        await self._counters(reply.callback_attempts, self.keys.callback_stat(""))
        await self._counters(reply.export_attempts, self.keys.export_stat(""))
        for outcome, count in (await self.redis.hgetall(self.keys.dicom_stats)).items():
            reply.dicom_instances[outcome.decode()] = int(count)
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
