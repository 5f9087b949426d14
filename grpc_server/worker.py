"""The worker: one loop that takes a job, runs its task to a final state, and acknowledges it.

    load and warm up pipelines -> heartbeat (ready) -> loop:
        job = stale job of a dead worker (every claim_interval_s) or the next new job
        mark RUNNING (or skip a cancelled/finished task, or fail 12005 past max_deliveries)
        image = stored bytes or fetch(imageUrl) -> decode -> pipeline.run   (within task_timeout_s)
        finish (result or error, callback scheduled) -> XACK

No network server. SIGTERM/SIGINT: stop taking jobs and finish the current one; a second signal
releases the current job back to the queue at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import uvloop
from google.protobuf.message import Message
from redis.exceptions import RedisError

from artifacts.make import warm_up
from dentalai.config import Settings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.logs import task_context
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.artifact_step import make_and_store
from grpc_server.artifact_store import ArtifactStore
from grpc_server.connection import redis_client
from grpc_server.export_policy import destination_for
from grpc_server.fetch import fetch_image
from grpc_server.keys import Keys
from grpc_server.processing import process
from grpc_server.queue import Job, JobQueue
from grpc_server.store import RunOutcome, StoredTask, TaskStore
from pipelines.base_pipeline import DecodedImage, Pipeline
from pipelines.registry import LoadedPipelines, load_pipelines

T = TypeVar("T")
Input = tuple[bytes, DecodedImage]  # a task's image as sent and decoded, for its artifacts

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, redis: aioredis.Redis, loaded: LoadedPipelines) -> None:
        self.settings = settings
        self.redis = redis
        self.loaded = loaded
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.queue = JobQueue(redis, self.keys)
        self.artifacts = ArtifactStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.stopping = asyncio.Event()
        self._last_claim = 0.0

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        log.info(
            "worker ready",
            extra={
                "workerId": self.worker_id,
                "taskTypes": sorted(self.loaded.pipelines),
                "runtime": self.loaded.runtime,
            },
        )
        try:
            while not self.stopping.is_set():
                try:
                    job = await self._next_job()
                    if job is not None:
                        await self.handle(job)
                except (RedisError, OSError) as exc:
                    log.warning("redis unreachable, retrying: %s", type(exc).__name__)
                    await self._sleep(1.0)
        finally:
            heartbeat.cancel()
            try:
                await self.redis.delete(self.keys.worker(self.worker_id))
            except (RedisError, OSError):
                pass
            log.info("worker stopped", extra={"workerId": self.worker_id})

    async def _next_job(self) -> Job | None:
        if time.monotonic() - self._last_claim >= self.settings.worker.claim_interval_s:
            self._last_claim = time.monotonic()
            stale = await self.queue.claim_stale(self.worker_id, self.settings.tasks.visibility_timeout_s)
            if stale:
                log.info(
                    "took over a stale job",
                    extra={"taskId": stale[0].task_id, "clientId": stale[0].ref.client_id},
                )
                return stale[0]
        return await self.queue.read(self.worker_id, self.settings.worker.block_ms)

    async def handle(self, job: Job) -> None:
        """Run one job to a final state; acknowledge only once that state is stored."""
        with task_context(job.task_id, job.ref.client_id):
            outcome, stored = await self.store.mark_running(job.ref, self.settings.tasks.max_deliveries)
            if outcome == RunOutcome.SKIP:
                log.info("job skipped: task cancelled, final or expired")
                await self.queue.ack(job)
                return
            assert stored is not None
            if outcome == RunOutcome.ABANDON:
                deliveries = stored.task.deliveries
                await self.store.finish(
                    job.ref,
                    error=task_pb2.TaskError(
                        code=ErrorCode.TASK_ABANDONED,
                        message=f"task abandoned after {deliveries} deliveries (workers crashed)",
                    ),
                )
                await self.queue.dead_letter(job, deliveries, "max_deliveries")
                log.error("task abandoned after repeated deliveries", extra={"deliveries": deliveries})
                return
            started = time.monotonic()
            keeper = asyncio.create_task(self._keep(job))
            try:
                result, model, error, inputs = await self._process(stored)
            except asyncio.CancelledError:
                # Forced stop: hand the job back now rather than after the visibility timeout.
                await asyncio.shield(self._release(job))
                raise
            finally:
                keeper.cancel()
            artifacts = await self._artifacts(job, stored, result, model, inputs)
            export_to = destination_for(self.settings, job.ref, stored.task.options)
            finished = await self._through_outage(
                lambda: self.store.finish(
                    job.ref, result=result, error=error, model=model, artifacts=artifacts, export_to=export_to
                )
            )
            if not finished:
                log.info("task was already final (taken over meanwhile); result dropped")
            await self._through_outage(lambda: self.queue.ack(job))
            log.info(
                "task finished",
                extra={
                    "status": "FAILED" if error else "SUCCEEDED",
                    "code": error.code if error else 0,
                    "processingMs": int((time.monotonic() - started) * 1000),
                },
            )

    async def _artifacts(
        self,
        job: Job,
        stored: StoredTask,
        result: Message | None,
        model: results_pb2.ModelInfo | None,
        inputs: Input | None,
    ) -> task_pb2.TaskArtifacts | None:
        """Artifacts of a result, stored before `finish` schedules the callback (artifact_step)."""
        if result is None or inputs is None or not self.settings.artifacts.enabled:
            return None
        raw, image = inputs
        return await self._through_outage(
            lambda: make_and_store(
                self.settings, self.artifacts, job.ref, stored.task, result, model, raw, image
            )
        )

    async def _through_outage(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a Redis call until it succeeds: a computed result waits out an outage here instead
        of being dropped and re-run after the visibility timeout. A stopping worker gives up."""
        while True:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                if self.stopping.is_set():
                    raise
                log.warning("redis unreachable while storing a result, retrying: %s", type(exc).__name__)
                await self._sleep(1.0)

    async def _keep(self, job: Job) -> None:
        """While this worker is alive and busy, its job is not stale."""
        interval = self.settings.tasks.visibility_timeout_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.keep(job, self.worker_id)
            except (RedisError, OSError):
                pass  # an outage: if it outlasts the visibility timeout, the job is re-run (at least once)

    async def _release(self, job: Job) -> None:
        await self.store.release(job.ref)
        await self.queue.requeue(job)
        log.info("job released on shutdown")

    async def _process(
        self, stored: StoredTask
    ) -> tuple[Message | None, results_pb2.ModelInfo | None, task_pb2.TaskError | None, Input | None]:
        """(result, model, error, the input its artifacts are drawn on)."""
        task = stored.task
        pipeline = self.loaded.pipelines.get(task.task_type)
        if pipeline is None:
            error = task_pb2.TaskError(
                code=ErrorCode.MODEL_UNAVAILABLE,
                message=f"model for taskType {task.task_type!r} is not available",
            )
            return None, None, error, None
        try:
            result, inputs = await asyncio.wait_for(
                self._analyse(pipeline, stored), timeout=self.settings.tasks.task_timeout_s
            )
            return result, pipeline.model_info, None, inputs
        except TimeoutError:
            limit = self.settings.tasks.task_timeout_s
            code, message = ErrorCode.PROCESSING_TIMEOUT, f"processing exceeded {limit} s"
        except DentalAIError as exc:  # engine failures arrive as 12001 (grpc_server.processing)
            code, message = exc.code, exc.message
        except Exception:
            log.exception("unexpected error while processing")
            code, message = ErrorCode.INTERNAL, "internal error"
        return None, pipeline.model_info, task_pb2.TaskError(code=code, message=message), None

    async def _analyse(self, pipeline: Pipeline, stored: StoredTask) -> tuple[Message, Input]:
        data = stored.image if stored.image else await fetch_image(stored.image_url, self.settings)
        options = task_pb2.AnalysisOptions()
        options.CopyFrom(stored.task.options)
        # In a thread so that the time limit can end the wait (the thread itself runs to its end).
        result, image = await asyncio.to_thread(process, pipeline, data, options, self.settings.limits)
        return result, (data, image)

    # ---- heartbeat and stopping ----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        # The WorkerInfo of GetServiceStatus, as is; sent only after the pipelines loaded and
        # warmed up, so a live heartbeat with models means ready.
        beat = pb.WorkerInfo(
            worker_id=self.worker_id,
            runtime=self.loaded.runtime,
            models=self.loaded.models,
            task_types=sorted(self.loaded.pipelines),
        )
        ttl = max(1, int(round(self.settings.worker.heartbeat_ttl_s)))
        while True:
            beat.last_seen.GetCurrentTime()
            try:
                await self.redis.set(self.keys.worker(self.worker_id), beat.SerializeToString(), ex=ttl)
            except (RedisError, OSError):
                pass  # the loop logs the outage
            await asyncio.sleep(self.settings.worker.heartbeat_interval_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


async def run_worker(settings: Settings) -> None:
    loaded = await asyncio.to_thread(load_pipelines, settings)
    if settings.artifacts.enabled:
        await asyncio.to_thread(warm_up)
    worker = Worker(settings, redis_client(settings), loaded)
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if worker.stopping.is_set() and main_task is not None:
            main_task.cancel()  # second signal: release the current job now
        worker.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run()
    except asyncio.CancelledError:
        pass
    finally:
        loaded.close()


def main(settings: Settings) -> None:
    uvloop.run(run_worker(settings))
