"""Exports: a succeeded task's DICOM results (report.dcm, overlay.dcm) sent to its destination
(exports.destinations: C-STORE to an AE or STOW-RS to a DICOMweb server), run by the dispatcher
process beside the callbacks.

The task store puts a task on `{p}exports:schedule` when it finishes SUCCEEDED with its DICOM
files and names a destination (TaskStore.finish, export_policy.destination_for); this loop (the
shared one of schedule.py) claims it with a lease, sends the files as stored, and settles the
attempt in the task's ExportInfo (TaskStore.settle_export) on the callbacks' retry schedule
(callbacks.plan_next with callbacks.retry_delays_s and jitter). So an export survives a restart of
every process, is retried like a callback and is delivered at least once; the same files carry
the same SOP Instance UIDs, so a repeat is the same instances for the PACS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis

from dentalai.config import ExportDestination, Settings
from dentalai.v1 import task_pb2
from grpc_server import netguard
from grpc_server.artifact_store import ArtifactStore
from grpc_server.callbacks import Outcome, plan_next
from grpc_server.export_send import SendResult, cstore, stow
from grpc_server.keys import Keys, TaskRef
from grpc_server.schedule import ScheduleLoop, stamp
from grpc_server.store import TaskStore

log = logging.getLogger(__name__)

_STATES = {
    Outcome.DELIVERED: task_pb2.EXPORT_DELIVERED,
    Outcome.RETRY: task_pb2.EXPORT_PENDING,
    Outcome.FAILED: task_pb2.EXPORT_FAILED,
    Outcome.EXHAUSTED: task_pb2.EXPORT_EXHAUSTED,
}


class Exporter(ScheduleLoop):
    what = "export"

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.exports
        self.keys = Keys(settings.key_prefix)
        super().__init__(
            redis, self.keys.export_schedule, concurrency=self.cfg.concurrency,
            poll_interval_s=settings.callbacks.poll_interval_s, lease_s=self.cfg.lease_s,
            drain_s=3 * self.cfg.timeout_s,
            wait_replicas=settings.redis.wait_replicas, wait_timeout_ms=settings.redis.wait_timeout_ms,
        )  # fmt: skip
        self.store = TaskStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.artifacts = ArtifactStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.http = httpx.AsyncClient(
            transport=transport or netguard.PinnedTransport(settings.ssrf),
            timeout=httpx.Timeout(self.cfg.timeout_s, connect=self.cfg.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def check_destinations(self) -> None:
        """Warnings at start for what would fail every export later."""
        for dest in self.cfg.destinations:
            host = urlsplit(dest.url).hostname if dest.kind == "stowrs" else None
            if host and netguard.literal_forbidden(host, self.settings.ssrf):
                log.warning("export destination %s: %s is refused by the SSRF guard (allow-list it in ssrf)",
                            dest.name, host)
        if self.cfg.lease_s <= 3 * self.cfg.timeout_s:
            log.warning("exports.lease_s <= 3 x exports.timeout_s: a slow export may be sent twice")

    # ---- one attempt ---------------------------------------------------------------------------

    async def attempt(self, ref: TaskRef, lease: str) -> None:
        stored = await self.store.get_stored(ref)
        if stored is None or stored.task.export.state != task_pb2.EXPORT_PENDING:
            # Expired or erased task, or nothing pending (stale entry): drop it from the schedule.
            await self.store.settle_export(ref, lease, None, None, None)
            return
        info = task_pb2.ExportInfo()
        info.CopyFrom(stored.task.export)
        result = await self.send(ref, info)
        now = time.time()
        info.attempts += 1
        info.last_attempt_at.CopyFrom(stamp(now))
        info.last_status_code = result.status or 0
        info.last_error = result.error
        retry = self.settings.callbacks  # the one retry schedule of callbacks and exports
        outcome, delay = plan_next(
            result.outcome, info.attempts, retry.retry_delays_s, retry.jitter, result.retry_after,
            retry.max_retry_after_s,
        )  # fmt: skip
        info.state = _STATES[Outcome(outcome)]
        next_due = None if delay is None else now + delay
        info.ClearField("next_attempt_at")
        if next_due is not None:
            info.next_attempt_at.CopyFrom(stamp(next_due))
        if outcome == Outcome.DELIVERED:
            info.delivered_at.CopyFrom(stamp(now))
        settled = await self.store.settle_export(ref, lease, info, self.keys.export_stat(outcome), next_due)
        log.info(
            "export attempt",
            extra={
                "destination": info.destination, "attempt": info.attempts, "outcome": outcome,
                "status": result.status or 0, "error": result.error, "settled": settled,
            },
        )  # fmt: skip

    async def send(self, ref: TaskRef, info: task_pb2.ExportInfo) -> SendResult:
        dest = self.cfg.destination(info.destination)
        if dest is None:
            return SendResult(Outcome.FAILED, error=f"destination {info.destination!r} is not configured")
        files: dict[str, bytes] = {}
        for name in info.files:
            data = await self.artifacts.get(ref, name)
            if data is None:
                return SendResult(Outcome.FAILED, error=f"{name} is no longer stored")
            files[name] = data
        return await self.send_files(dest, files)

    async def send_files(self, dest: ExportDestination, files: dict[str, bytes]) -> SendResult:
        if dest.kind == "cstore":
            cfg = self.cfg
            return await asyncio.to_thread(cstore, dest, files, cfg.connect_timeout_s, cfg.timeout_s)
        return await stow(self.http, dest, files, self.cfg.timeout_s)
