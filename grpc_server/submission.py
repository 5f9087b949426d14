"""Accepting a submission: the one rule that turns a request of a client into a stored, queued task.

Every way in goes through `accept`: SubmitAnalysis and Analyze (gRPC, and REST through the
bridge) and the DICOM node's C-STORE (dicom_node/), so validation, the client's task types, the
idempotent taskId and the queue shares are the same for all of them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from dentalai.config import ClientSettings, Settings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.logs import task_context
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.keys import TaskRef
from grpc_server.store import CreateOutcome, TaskStore, not_found, now_ts
from grpc_server.validation import validate_submission

log = logging.getLogger(__name__)

_HASH_VERSION = "v2:"


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


def legacy_hash(stored: str, request: pb.SubmitAnalysisRequest) -> str:
    """The hash a task stored before submission_hash had (no version prefix), for a resubmission
    across the upgrade; computed only on that rare path."""
    if stored.startswith(_HASH_VERSION):
        return ""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class Accepted:
    task: task_pb2.Task
    created: bool  # False: a resubmission, answered with the task already stored


def check_task_type(client: ClientSettings, task_type: str) -> None:
    """10002 when the client may not submit this task type (auth.clients[].task_types)."""
    if client.task_types and task_type not in client.task_types:
        raise DentalAIError(
            ErrorCode.UNSUPPORTED_TASK_TYPE,
            f"taskType {task_type!r} is not enabled for this client",
            [("taskType", "not enabled for this client")],
        )


async def accept(
    store: TaskStore,
    settings: Settings,
    client: ClientSettings,
    request: pb.SubmitAnalysisRequest,
    *,
    request_hash: str | None = None,
    callback_required: bool = True,
) -> Accepted:
    """Validate `request`, store it as a QUEUED task of `client` and enqueue its job (one atomic
    step, TaskStore.create); the task as stored, or the existing one for a resubmission.

    `request_hash` replaces submission_hash where another identity decides "same submission" (the
    DICOM node: the SOP Instance). `callback_required` False admits an empty callbackUrl: the
    task is stored with callback state NO_CALLBACK (the DICOM node has no HTTP receiver).
    Raises DentalAIError: 10001/10002 (invalid), 10004 (taskId used with another body), 10007
    (queue or the client's share full); RedisError/OSError when the store is unreachable."""
    validate_submission(request, settings, callback_required=callback_required, client=client)
    check_task_type(client, request.task_type)
    task_id = request.task_id or uuid.uuid4().hex
    ref = TaskRef(client.id, task_id)
    image = request.image_data if request.WhichOneof("image") == "image_data" else None
    request_hash = request_hash or submission_hash(request, image)
    callback_state = task_pb2.NOT_DUE if request.callback_url else task_pb2.NO_CALLBACK
    task = task_pb2.Task(
        task_id=task_id,
        task_type=request.task_type,
        status=task_pb2.QUEUED,
        created_at=now_ts(),
        callback=task_pb2.CallbackInfo(url=request.callback_url, state=callback_state),
    )
    if request.HasField("metadata"):
        task.metadata.CopyFrom(request.metadata)
    task.options.CopyFrom(request.options)
    if task.options.tooth_numbering == 0:
        task.options.tooth_numbering = results_pb2.FDI
    with task_context(task_id, client.id):
        outcome, existing_hash = await store.create(
            ref,
            task,
            image,
            request.image_url,
            request_hash,
            settings.limits.queue_max_length,
            client.queue_share,
            wait_replicas=settings.redis.wait_replicas,  # durable acceptance (10008 when unconfirmed)
            wait_timeout_ms=settings.redis.wait_timeout_ms,
        )
        if outcome == CreateOutcome.FULL:
            raise DentalAIError(ErrorCode.QUEUE_FULL, "queue full; retry later")
        if outcome == CreateOutcome.FULL_CLIENT:
            raise DentalAIError(
                ErrorCode.QUEUE_FULL,
                f"this client's share of the queue ({client.queue_share} open tasks) is full; retry later",
            )
        if outcome == CreateOutcome.EXISTS:
            if existing_hash != request_hash and existing_hash != legacy_hash(existing_hash, request):
                raise DentalAIError(
                    ErrorCode.TASK_ID_CONFLICT, f"taskId {task_id} already used with a different body"
                )
            log.info("resubmission of an existing task")
            existing = await store.get(ref)
            if existing is None:  # expired or erased between the two reads
                raise not_found(ref)
            return Accepted(existing, created=False)
        log.info("task queued", extra={"taskType": task.task_type})
        return Accepted(task, created=True)
