"""The dispatcher process: posts finished tasks to their callbackUrl with retries, and beside it
sends succeeded tasks' DICOM results to their export destination (exports.py).

The callback schedule is the Redis sorted set `{p}callbacks:schedule`, worked off by the shared
loop of schedule.py (claim with a lease, deliver, settle); one attempt here is one POST, settled by
`TaskStore.settle_callback` (writes the CallbackInfo, counts the attempt and removes or re-scores
the member - only if it still carries our lease score: a re-send in between re-armed it: keep
that). A task without a callback URL (a DICOM submission) is dropped from the schedule unsent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import httpx
import redis.asyncio as aioredis
import uvloop

from dentalai.config import Settings
from dentalai.task_json import callback_bytes
from dentalai.v1 import task_pb2
from grpc_server.callbacks import Outcome, classify, parse_retry_after, plan_next, webhook_headers
from grpc_server.connection import redis_client
from grpc_server.exports import Exporter
from grpc_server.keys import Keys, TaskRef
from grpc_server.netguard import AddressRefused, PinnedTransport
from grpc_server.schedule import ScheduleLoop, stamp
from grpc_server.store import TaskStore

log = logging.getLogger(__name__)


class Attempt:
    """What one POST gave: an HTTP status (None without an answer), an error text, Retry-After."""

    def __init__(
        self, status: int | None, error: str = "", retry_after: float | None = None, refused: bool = False
    ) -> None:
        self.status = status
        self.error = error
        self.retry_after = retry_after
        self.refused = refused


class Dispatcher(ScheduleLoop):
    what = "callback"

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.callbacks
        self.keys = Keys(settings.key_prefix)
        super().__init__(
            redis, self.keys.callback_schedule, concurrency=self.cfg.concurrency,
            poll_interval_s=self.cfg.poll_interval_s, lease_s=self.cfg.lease_s,
            drain_s=self.cfg.timeout_s + 2,
            wait_replicas=settings.redis.wait_replicas, wait_timeout_ms=settings.redis.wait_timeout_ms,
        )  # fmt: skip
        self.store = TaskStore(redis, self.keys, settings.tasks.result_ttl_s)
        self.http = httpx.AsyncClient(
            transport=transport
            or PinnedTransport(settings.ssrf, limits=httpx.Limits(max_connections=self.cfg.concurrency)),
            timeout=httpx.Timeout(self.cfg.timeout_s, connect=self.cfg.connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- one attempt ---------------------------------------------------------------------------

    async def attempt(self, ref: TaskRef, lease: str) -> None:
        stored = await self.store.get_stored(ref)
        if stored is None or stored.task.callback.state != task_pb2.PENDING:
            # Expired task, or nothing pending (stale entry): drop it from the schedule.
            await self._write(ref, lease, None, "", None)
            return
        task = stored.task
        if not task.callback.url:
            # No receiver (a DICOM submission): nothing to send, nothing to retry.
            info = task_pb2.CallbackInfo(state=task_pb2.NO_CALLBACK)
            await self._write(ref, lease, info, "", None)
            return
        body = callback_bytes(task)
        msg_id = stored.webhook_id or f"msg_{ref.task_id}"
        headers = webhook_headers(msg_id, int(time.time()), body, self.cfg.signing_secrets)
        attempt = await self.post(task.callback.url, body, headers)
        now = time.time()
        info = task_pb2.CallbackInfo()
        info.CopyFrom(task.callback)
        info.attempts += 1
        info.last_attempt_at.CopyFrom(stamp(now))
        info.last_status_code = attempt.status or 0
        info.last_error = attempt.error
        outcome, delay = plan_next(
            Outcome.FAILED if attempt.refused else classify(attempt.status), info.attempts,
            self.cfg.retry_delays_s, self.cfg.jitter, attempt.retry_after, self.cfg.max_retry_after_s,
        )  # fmt: skip
        next_due = None if delay is None else now + delay
        if outcome == Outcome.DELIVERED:
            info.state = task_pb2.DELIVERED
            info.delivered_at.CopyFrom(stamp(now))
            info.ClearField("next_attempt_at")
        elif next_due is not None:
            info.state = task_pb2.PENDING
            info.next_attempt_at.CopyFrom(stamp(next_due))
        else:
            info.state = task_pb2.EXHAUSTED
            info.ClearField("next_attempt_at")
        settled = await self._write(ref, lease, info, outcome, next_due)
        log.info(
            "callback attempt",
            extra={
                "attempt": info.attempts, "outcome": outcome, "httpStatus": attempt.status or 0,
                "error": attempt.error, "settled": settled,
            },
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """One POST within callbacks.timeout_s in all (httpx's timeouts are per read)."""
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                request = self.http.build_request("POST", url, content=body, headers=headers)
                response = await self.http.send(request, stream=True)
                await response.aclose()  # the receiver's body is not ours to read
        except AddressRefused as exc:
            return Attempt(None, f"refused address: {exc}", refused=True)
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(None, "timeout")
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])
        except (httpx.InvalidURL, ValueError) as exc:
            return Attempt(None, f"invalid callback URL: {exc}"[:300], refused=True)
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Attempt(status, "" if 200 <= status < 300 else f"HTTP {status}", retry_after)

    async def _write(
        self,
        ref: TaskRef,
        lease: str,
        info: task_pb2.CallbackInfo | None,
        outcome: str,
        next_due: float | None,
    ) -> bool:
        stat = self.keys.callback_stat(outcome) if outcome else None
        return await self.store.settle_callback(ref, lease, info, stat, next_due)


async def serve(settings: Settings) -> None:
    if not settings.callbacks.signing_secrets:
        log.warning(
            "callbacks.signing_secrets is empty: callbacks are sent unsigned and receivers cannot "
            "tell them from forgeries (`dentalai up` makes one under var/; set one in production)"
        )
    if settings.callbacks.lease_s <= settings.callbacks.timeout_s:
        log.warning("callbacks.lease_s <= callbacks.timeout_s: a slow attempt may be sent twice")
    redis = redis_client(settings)
    dispatcher = Dispatcher(settings, redis)
    exporter = Exporter(settings, redis)
    exporter.check_destinations()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "dispatcher started",
        extra={
            "concurrency": settings.callbacks.concurrency,
            "destinations": len(settings.exports.destinations),
        },
    )
    try:
        await asyncio.gather(dispatcher.run(stop), exporter.run(stop))
    finally:
        await dispatcher.aclose()
        await exporter.aclose()
        await redis.aclose()
    log.info("dispatcher stopped")


def main(settings: Settings) -> None:
    """Entry point of `dentalai dispatcher`."""
    uvloop.run(serve(settings))
