"""The task store: one Redis hash per task, expiring result_ttl_s after creation and again after finish.

Hash fields (keys.Keys.task):
- `task`         serialized dentalai.v1.Task without image and without `callback` (see below)
- `status`       the TaskStatus name, duplicated so that scripts can check transitions
- `image`        image bytes of an imageData submission; removed when the task is final
- `image_url`    imageUrl of a URL submission (not part of the Task message: it may carry credentials)
- `request_hash` sha256 of the submission, for idempotent taskIds
- `callback`     serialized CallbackInfo. Written by create/finish/resend and by `settle_callback`
                 (the dispatcher's attempt result, only while it holds the schedule lease), so
                 neither side overwrites the other's facts.
- `webhook_id`   set once at finish; the same on every delivery attempt and re-send
- `export`       serialized ExportInfo, only for a task that names an export destination: written
                 by finish (PENDING and on the export schedule when it SUCCEEDED with its DICOM
                 results, else SKIPPED) and by `settle_export` (the dispatcher's attempt, under its
                 lease), like `callback`.

Every state change is one MULTI/EXEC under WATCH (or one Lua script), so a crash never leaves a
final task without its scheduled callback (or export), and a task taken over by a second worker gets one final
state only (the first `finish` wins).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import WatchError

from artifacts.kinds import EXPORTED
from dentalai.contract import FINAL_STATUSES
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import task_pb2
from grpc_server.keys import CONSUMER_GROUP, Keys, TaskRef
from grpc_server.queue import WAKE_TOKENS

TaskStatus = task_pb2.TaskStatus

# Create and enqueue in one step: an existing task of this client and taskId answers "exists" with
# its request hash; a client at its queue share answers "full-client", a full queue (open jobs of
# all clients) "full"; otherwise the hash is written, expires, and the job is appended to the
# client's stream (queue.py), whose client joins the rotation on its first job, at the head: next.
# KEYS: task, client stream, stats, rotation, clients set, wake list.
# ARGV: task, request hash, callback, image, total cap, ttl, ref, image_url, client share,
#       client id, stream key prefix, consumer group, wake tokens kept, '1' when a WAIT follows.
# With a WAIT after it, "exists" writes the stored hash back unchanged: WAIT counts only this
# connection's writes, and this one (replicated after the task's own) makes it cover the task.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local stored = redis.call('HGET', KEYS[1], 'request_hash') or ''
  if ARGV[14] == '1' then redis.call('HSET', KEYS[1], 'request_hash', stored) end
  return {'exists', stored}
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[9]) then
  return {'full-client', ''}
end
local open = 0
for _, client in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  open = open + redis.call('XLEN', ARGV[11] .. client)
end
if open >= tonumber(ARGV[5]) then
  return {'full', ''}
end
redis.call('HSET', KEYS[1], 'task', ARGV[1], 'status', 'QUEUED', 'request_hash', ARGV[2], 'callback', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'image', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'image_url', ARGV[8]) end
if redis.call('SADD', KEYS[5], ARGV[10]) == 1 then
  pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], ARGV[12], '0', 'MKSTREAM')
  redis.call('LPUSH', KEYS[4], ARGV[10])
end
redis.call('XADD', KEYS[2], '*', 'task', ARGV[7])
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[13]) - 1)
redis.call('HINCRBY', KEYS[3], 'QUEUED', 1)
return {'created', ''}
"""

# The dispatcher's settle of one attempt (a callback or an export): count it, then - only if the
# schedule member still carries the dispatcher's lease score (a re-send in between re-armed it:
# keep that) - write the CallbackInfo or ExportInfo (while the task exists) and remove or re-score
# the member.
# KEYS: schedule, task hash, stat counter. ARGV: member, lease score, serialized info ('' = leave
# it), next due score ('' = remove), '1' to count the attempt, hash field of the info.
_SETTLE = """
if ARGV[5] == '1' then redis.call('INCR', KEYS[3]) end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[6], ARGV[3])
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return 1
"""


def not_found(ref: TaskRef) -> DentalAIError:
    """10009 for a task the caller cannot see: unknown, expired, erased or another client's; the
    same words for each, so an answer never tells that another client uses a taskId."""
    return DentalAIError(ErrorCode.TASK_NOT_FOUND, f"task {ref.task_id[:64]!r} not found")


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def status_name(status: int) -> str:
    return task_pb2.TaskStatus.Name(status)


@dataclass(frozen=True)
class StoredTask:
    """A task as read from the store, with the fields the worker and dispatcher need beside it."""

    task: task_pb2.Task  # callback merged in
    image: bytes | None
    image_url: str
    request_hash: str
    webhook_id: str


class CreateOutcome(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    FULL = "full"  # the queue as a whole
    FULL_CLIENT = "full-client"  # this client's share


class RunOutcome(StrEnum):
    RUN = "run"  # now RUNNING, delivery counted: process it
    SKIP = "skip"  # final, cancelled or gone: acknowledge the job
    ABANDON = "abandon"  # past max_deliveries: fail it with 12005


class TaskStore:
    """Async access to task hashes. `redis` must be a redis.asyncio client with decode_responses=False."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, result_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.result_ttl_s = result_ttl_s
        self._create = redis.register_script(_CREATE)
        self._settle = redis.register_script(_SETTLE)

    # ---- reading -------------------------------------------------------------------------------

    async def get(self, ref: TaskRef) -> task_pb2.Task | None:
        """The task with its CallbackInfo merged in, or None when unknown or expired."""
        stored = await self.get_stored(ref, with_image=False)
        return stored.task if stored else None

    async def get_stored(self, ref: TaskRef, with_image: bool = False) -> StoredTask | None:
        """The task plus image (when asked), request hash and webhook id; None when unknown."""
        fields = _FIELDS + ([b"image", b"image_url"] if with_image else [])
        values = await self.redis.hmget(self.keys.task(ref), fields)
        if values[0] is None:
            return None
        return _decode(values, with_image)

    # ---- writing -------------------------------------------------------------------------------

    async def create(
        self,
        ref: TaskRef,
        task: task_pb2.Task,
        image: bytes | None,
        image_url: str,
        request_hash: str,
        queue_max_length: int,
        client_share: int,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> tuple[CreateOutcome, str]:
        """Store a new QUEUED task of `ref`'s client and append its job to that client's stream,
        atomically.

        Returns (outcome, stored request hash): CREATED; EXISTS (nothing changed; compare the hash
        to tell a resubmission from a conflict); FULL or FULL_CLIENT (nothing written: 10007).
        With `wait_replicas` (redis.wait_replicas), CREATED and EXISTS also mean that many
        replicas hold the task; raises 10008 when they do not confirm it within wait_timeout_ms
        (the task stays on the primary: a retry with the same taskId finds it and waits again).
        """
        keys = [
            self.keys.task(ref),
            self.keys.queue(ref.client_id),
            self.keys.task_stats,
            self.keys.queue_rotation,
            self.keys.queue_clients,
            self.keys.queue_wake,
        ]
        args = [
            _bare(task),
            request_hash,
            task.callback.SerializeToString(),
            image or b"",
            queue_max_length,
            self.result_ttl_s,
            str(ref),
            image_url,
            client_share,
            ref.client_id,
            self.keys.queue_prefix,
            CONSUMER_GROUP,
            WAKE_TOKENS,
            "1" if wait_replicas else "0",
        ]
        if not wait_replicas:
            outcome, existing = await self._create(keys=keys, args=args)
            return CreateOutcome(outcome.decode()), existing.decode()
        # The script and its WAIT in one pipeline: both on one connection (WAIT counts that
        # connection's writes), and a retry after a lost connection sends both again.
        async with self.redis.pipeline(transaction=False) as pipe:  # reset (connection back) on errors too
            await self._create(keys=keys, args=args, client=pipe)
            pipe.wait(wait_replicas, wait_timeout_ms)
            (outcome, existing), acked = await pipe.execute()
        created = CreateOutcome(outcome.decode())
        if acked < wait_replicas and created in (CreateOutcome.CREATED, CreateOutcome.EXISTS):
            raise DentalAIError(
                ErrorCode.QUEUE_UNAVAILABLE,
                f"task {ref.task_id[:64]} is stored but not yet confirmed by {wait_replicas} Redis "
                f"replica(s) within {wait_timeout_ms} ms; retry with the same taskId and body",
            )
        return created, existing.decode()

    async def settle_callback(
        self,
        ref: TaskRef,
        lease: str,
        info: task_pb2.CallbackInfo | None,
        stat_key: str | None,
        next_due: float | None,
    ) -> bool:
        """The dispatcher's result of one attempt: count it under `stat_key` (None: not counted),
        write `info` (None: leave the callback as it is) and re-score the schedule member to
        `next_due` (None: remove it) - the last two only while the member still carries `lease`.
        False when the lease was lost (re-sent or re-claimed meanwhile)."""
        schedule = self.keys.callback_schedule
        return await self._settle_on(schedule, b"callback", ref, lease, info, stat_key, next_due)

    async def settle_export(
        self,
        ref: TaskRef,
        lease: str,
        info: task_pb2.ExportInfo | None,
        stat_key: str | None,
        next_due: float | None,
    ) -> bool:
        """As settle_callback, for the export schedule and the task's ExportInfo."""
        schedule = self.keys.export_schedule
        return await self._settle_on(schedule, b"export", ref, lease, info, stat_key, next_due)

    async def _settle_on(
        self,
        schedule: str,
        field: bytes,
        ref: TaskRef,
        lease: str,
        info: Message | None,
        stat_key: str | None,
        next_due: float | None,
    ) -> bool:
        result = await self._settle(
            keys=[schedule, self.keys.task(ref), stat_key or ""],
            args=[
                str(ref),
                lease,
                info.SerializeToString() if info is not None else b"",
                "" if next_due is None else repr(next_due),
                "1" if stat_key else "0",
                field,
            ],
        )
        return bool(result)

    async def mark_running(self, ref: TaskRef, max_deliveries: int) -> tuple[RunOutcome, StoredTask | None]:
        """A worker takes the task. Returns (RUN, task with image) after setting RUNNING and
        counting the delivery; (SKIP, task-or-None) when it is final, cancelled or gone;
        (ABANDON, task) when this delivery would exceed max_deliveries (caller fails it 12005)."""
        result = [RunOutcome.SKIP]

        def change(stored: StoredTask) -> dict[bytes, bytes] | None:
            task = stored.task
            if task.status in FINAL_STATUSES:
                return None
            if task.deliveries + 1 > max_deliveries:
                result[0] = RunOutcome.ABANDON
                return None
            task.status = task_pb2.RUNNING
            task.deliveries += 1
            task.started_at.CopyFrom(now_ts())
            result[0] = RunOutcome.RUN
            return {b"task": _bare(task), b"status": b"RUNNING"}

        stored = await self._transition(
            ref, change, with_image=True, schedule_callback=False, drop_image=False, count_status=True
        )
        return result[0], stored

    async def release(self, ref: TaskRef) -> bool:
        """Put a RUNNING task back to QUEUED (graceful worker stop); the delivery is not counted."""

        def change(stored: StoredTask) -> dict[bytes, bytes] | None:
            task = stored.task
            if task.status != task_pb2.RUNNING:
                return None
            task.status = task_pb2.QUEUED
            task.deliveries = max(0, task.deliveries - 1)
            task.ClearField("started_at")
            return {b"task": _bare(task), b"status": b"QUEUED"}

        stored = await self._transition(
            ref, change, with_image=False, schedule_callback=False, drop_image=False, count_status=True
        )
        return stored is not None

    async def finish(
        self,
        ref: TaskRef,
        result: Message | None = None,
        error: task_pb2.TaskError | None = None,
        model: Message | None = None,
        artifacts: task_pb2.TaskArtifacts | None = None,
        export_to: str = "",
    ) -> bool:
        """Store the final state (SUCCEEDED with `result`, or FAILED with `error`), set the callback
        PENDING (NO_CALLBACK without a URL), give the task its webhook id and ZADD it to the
        callback schedule due now; with `export_to` (a destination name) also its ExportInfo,
        PENDING and on the export schedule when it succeeded with its DICOM results, else SKIPPED;
        all in one transaction. Returns False (nothing written) when the task is already final or
        gone."""
        stamp = now_ts()

        def change(stored: StoredTask) -> dict[bytes, bytes] | None:
            task = stored.task
            if task.status in FINAL_STATUSES:
                return None
            if error is not None:
                task.status = task_pb2.FAILED
                task.error.CopyFrom(error)
            else:
                task.status = task_pb2.SUCCEEDED
                if result is not None:
                    getattr(task, _result_field(task)).CopyFrom(result)
            if model is not None:
                task.model.CopyFrom(model)
            if artifacts is not None:
                task.artifacts.CopyFrom(artifacts)
            task.finished_at.CopyFrom(stamp)
            _fill_timing(task)
            callback = task.callback
            if callback.url:
                callback.state = task_pb2.PENDING
                callback.next_attempt_at.CopyFrom(stamp)
            else:
                callback.state = task_pb2.NO_CALLBACK  # a DICOM submission: nobody to call
            updates = {
                b"task": _bare(task),
                b"status": status_name(task.status).encode(),
                b"callback": callback.SerializeToString(),
                b"webhook_id": (stored.webhook_id or f"msg_{uuid.uuid4().hex}").encode(),
            }
            if export_to:
                task.export.CopyFrom(_export_info(task, export_to, stamp))
                updates[b"export"] = task.export.SerializeToString()
            return updates

        stored = await self._transition(
            ref, change, with_image=False, schedule_callback=True, drop_image=False, count_status=True,
            schedule_export=True,
        )  # fmt: skip
        return stored is not None

    async def cancel(self, ref: TaskRef) -> tuple[task_pb2.Task, bool]:
        """DELETE of a task: a QUEUED task is cancelled (no callback is sent; the job stays in the
        stream and the worker skips it); a final one is erased at once with its artifacts, image
        and pending callback. Returns (the task, erased). Raises 10009 when unknown, 10010 when
        RUNNING (its worker holds it: erase it once it has finished)."""
        erased = [False]

        def change(stored: StoredTask) -> dict[bytes, bytes] | None:
            task = stored.task
            if task.status == task_pb2.RUNNING:
                raise DentalAIError(
                    ErrorCode.TASK_NOT_CANCELLABLE,
                    f"task {ref.task_id} is RUNNING; it can be erased once it has finished",
                )
            if task.status != task_pb2.QUEUED:
                erased[0] = True
                return _ERASE
            task.status = task_pb2.CANCELLED
            task.finished_at.CopyFrom(now_ts())
            _fill_timing(task)
            return {b"task": _bare(task), b"status": b"CANCELLED"}

        stored = await self._transition(
            ref, change, with_image=False, schedule_callback=False, drop_image=True, count_status=True
        )
        if stored is None:
            raise not_found(ref)
        return stored.task, erased[0]

    async def resend(self, ref: TaskRef) -> task_pb2.Task:
        """Re-arm a finished task's callback: state PENDING, attempts reset, due now (same
        webhook id). Raises 10009 when unknown, 10010 when the task is not SUCCEEDED/FAILED."""

        def change(stored: StoredTask) -> dict[bytes, bytes] | None:
            task = stored.task
            if task.status not in (task_pb2.SUCCEEDED, task_pb2.FAILED):
                raise DentalAIError(
                    ErrorCode.TASK_NOT_CANCELLABLE,
                    f"task {ref.task_id} is {status_name(task.status)}; only a finished task's callback "
                    "can be sent again",
                )
            callback = task.callback
            if not callback.url:
                raise DentalAIError(
                    ErrorCode.TASK_NOT_CANCELLABLE, f"task {ref.task_id} has no callback URL: nothing to send"
                )
            callback.state = task_pb2.PENDING
            callback.attempts = 0
            callback.next_attempt_at.CopyFrom(now_ts())
            return {b"callback": callback.SerializeToString()}

        stored = await self._transition(
            ref, change, with_image=False, schedule_callback=True, drop_image=False, count_status=False
        )
        if stored is None:
            raise not_found(ref)
        return stored.task

    # ---- internals -----------------------------------------------------------------------------

    async def _transition(
        self,
        ref: TaskRef,
        change: Callable[[StoredTask], dict[bytes, bytes] | None],
        *,
        with_image: bool,
        schedule_callback: bool,
        drop_image: bool,
        count_status: bool,
        schedule_export: bool = False,
    ) -> StoredTask | None:
        """Read under WATCH, let `change` mutate the task and return the fields to write (or None
        for no change), then write them in MULTI/EXEC; retried when another writer got between.
        Returns the (changed) task, or None when it is gone or `change` declined. `change` may
        return _ERASE instead of fields: the task, its artifacts and its schedule entries are then
        deleted together (and the task returned as it was).

        Every caller says what the change implies: `with_image` reads the image and image_url
        too (and returns the task even when `change` declines), `schedule_callback` puts the task
        on the callback schedule due now (when the callback it wrote is PENDING), `schedule_export`
        on the export schedule (when it wrote a PENDING export), `drop_image` deletes the image,
        `count_status` moves the stats:tasks counters and, for a final status, drops the image and
        restarts the TTL."""
        key = self.keys.task(ref)
        fields = _FIELDS + ([b"image", b"image_url"] if with_image else [])
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    values = await pipe.hmget(key, fields)
                    if values[0] is None:
                        return None
                    stored = _decode(values, with_image)
                    old_status = stored.task.status
                    updates = change(stored)
                    if updates is None:
                        await pipe.unwatch()
                        return stored if with_image else None
                    pipe.multi()
                    if updates is _ERASE:
                        pipe.delete(key, self.keys.artifacts(ref))
                        pipe.zrem(self.keys.callback_schedule, str(ref))
                        pipe.zrem(self.keys.export_schedule, str(ref))
                        await pipe.execute()
                        return stored
                    pipe.hset(key, mapping=updates)
                    new_status = stored.task.status
                    if count_status and new_status != old_status:
                        pipe.hincrby(self.keys.task_stats, status_name(old_status), -1)
                        pipe.hincrby(self.keys.task_stats, status_name(new_status), 1)
                    if new_status in FINAL_STATUSES and count_status:
                        pipe.hdel(key, b"image")
                        pipe.expire(key, self.result_ttl_s)
                    elif drop_image:
                        pipe.hdel(key, b"image")
                    if schedule_callback and _pending(updates, b"callback"):
                        pipe.zadd(self.keys.callback_schedule, {str(ref): time.time()})
                    if schedule_export and _pending(updates, b"export"):
                        pipe.zadd(self.keys.export_schedule, {str(ref): time.time()})
                    await pipe.execute()
                    if b"callback" in updates:
                        stored.task.callback.ParseFromString(updates[b"callback"])
                    if b"export" in updates:
                        stored.task.export.ParseFromString(updates[b"export"])
                    return stored
                except WatchError:
                    continue


_FIELDS = [b"task", b"callback", b"request_hash", b"webhook_id", b"export"]
# What a `_transition` change returns to erase the task (compared by identity).
_ERASE: dict[bytes, bytes] = {}


def _decode(values: list[bytes | None], with_image: bool) -> StoredTask:
    task = task_pb2.Task.FromString(values[0] or b"")
    if values[1]:
        task.callback.ParseFromString(values[1])
    if values[4]:
        task.export.ParseFromString(values[4])
    return StoredTask(
        task=task,
        image=values[5] if with_image else None,
        image_url=(values[6] or b"").decode() if with_image else "",
        request_hash=(values[2] or b"").decode(),
        webhook_id=(values[3] or b"").decode(),
    )


def _bare(task: task_pb2.Task) -> bytes:
    """The `task` field: the task without the facts kept in fields of their own."""
    bare = task_pb2.Task()
    bare.CopyFrom(task)
    bare.ClearField("callback")
    bare.ClearField("export")
    return bare.SerializeToString()


def _pending(updates: dict[bytes, bytes], field: bytes) -> bool:
    """Whether `updates` writes the `callback` or `export` field in its PENDING state."""
    if field not in updates:
        return False
    if field == b"callback":
        return task_pb2.CallbackInfo.FromString(updates[field]).state == task_pb2.PENDING
    return task_pb2.ExportInfo.FromString(updates[field]).state == task_pb2.EXPORT_PENDING


def _export_info(task: task_pb2.Task, destination: str, now: Timestamp) -> task_pb2.ExportInfo:
    """A just-finished task's export: due now when it succeeded with its DICOM results."""
    info = task_pb2.ExportInfo(destination=destination)
    files = [name for name in EXPORTED if name in task.artifacts.ready]
    if task.status == task_pb2.SUCCEEDED and files:
        info.state = task_pb2.EXPORT_PENDING
        info.files.extend(files)
        info.next_attempt_at.CopyFrom(now)
    else:
        info.state = task_pb2.EXPORT_SKIPPED
        failed = task.status != task_pb2.SUCCEEDED
        info.last_error = "the task failed" if failed else "no DICOM results were made"
    return info


def _result_field(task: task_pb2.Task) -> str:
    # Each task type of pipelines.registry has a Task.result field of its name (a test checks).
    return task.task_type


def _ms(ts: Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def _fill_timing(task: task_pb2.Task) -> None:
    created, finished = _ms(task.created_at), _ms(task.finished_at)
    started = _ms(task.started_at) if task.HasField("started_at") else finished
    task.timing.queued_ms = max(0, started - created)
    task.timing.processing_ms = max(0, finished - started)
    task.timing.total_ms = max(0, finished - created)
