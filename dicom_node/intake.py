"""One received instance -> a task of the caller's client, or an acknowledged, counted non-task.

The C-STORE is answered from `Receipt.status` as soon as `TaskStore.create` has stored and queued
the task (or found it stored): never after an analysis. The taskId is the SOP Instance UID and the
request hash stands for (instance, task type, options), so a sender's retry of the same instance,
in whatever transfer syntax, finds its task and is answered success again: analysed once.

Every instance is counted in `{p}stats:dicom` by outcome (OUTCOMES); the log line and the audit
line carry ids, the rule, the outcome and sizes, never a tag's value.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from redis.exceptions import RedisError

from dentalai.config import ClientSettings, Settings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import analysis_service_pb2 as pb
from dicom_node import status
from dicom_node.instance import Instance, Refused, read_instance
from dicom_node.routing import Route, Router
from grpc_server.store import TaskStore
from grpc_server.submission import accept

log = logging.getLogger(__name__)
audit_log = logging.getLogger("dentalai.audit")

# Outcomes counted (the metric's label): a new task; a re-send of a stored one; no rule matched;
# the rule's task type is not enabled for the client; the taskId holds another submission; the
# instance refused (its status says why); queue full; task store unreachable or slow.
OUTCOMES = (
    "accepted", "resent", "unrouted", "not_enabled", "conflict", "refused", "full", "unavailable",
)  # fmt: skip


@dataclass(frozen=True)
class Received:
    """One C-STORE: who sent it, the DICOM file as received, and the UIDs its command names."""

    client: ClientSettings
    calling_ae: str
    data: bytes
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Receipt:
    status: int
    outcome: str
    comment: str = ""  # the Error Comment of a failure
    task_id: str = ""


def instance_hash(instance: Instance, route: Route) -> str:
    """"Same submission" for a DICOM instance: its SOP Instance UID and what routing made of it,
    not its bytes (a retry may come in another transfer syntax). "v2:" as submission_hash's."""
    options = route.options.SerializeToString(deterministic=True)
    digest = hashlib.sha256(f"{instance.sop_instance_uid}\n{route.task_type}\n".encode() + options)
    return "v2:dicom:" + digest.hexdigest()


@dataclass(frozen=True)
class Routed:
    """An instance that passed the checks and a rule: to be submitted."""

    instance: Instance
    route: Route


class Intake:
    """`examine` (CPU: read and route, in the association's own thread), then `submit` (the task
    store, on the node's event loop) for a Routed instance; `record` counts and audits either."""

    def __init__(self, settings: Settings, store: TaskStore, router: Router) -> None:
        self.settings = settings
        self.store = store
        self.router = router

    def examine(self, received: Received) -> Routed | Receipt:
        """The instance and its route, or the answer when it is refused or not to be analysed."""
        facts = _facts(received)
        try:
            limit = self.settings.limits.max_image_bytes
            instance = read_instance(received.data, received.sop_class_uid, received.sop_instance_uid, limit)
        except Refused as exc:
            facts |= {"status": f"{exc.status:#06x}", "why": exc.comment}
            log.warning("instance refused", extra=facts)
            return Receipt(exc.status, "refused", exc.comment)
        task_id = instance.sop_instance_uid
        route = self.router.route(instance.tags)
        if route is None:
            log.info("instance not routed: no rule matches", extra={**facts, "taskId": task_id})
            return Receipt(status.SUCCESS, "unrouted", task_id=task_id)
        task_types = received.client.task_types
        if task_types and route.task_type not in task_types:
            facts |= {"taskId": task_id, "rule": route.rule, "taskType": route.task_type}
            log.info("instance not analysed: task type not enabled for the client", extra=facts)
            return Receipt(status.SUCCESS, "not_enabled", task_id=task_id)
        return Routed(instance, route)

    async def submit(self, received: Received, routed: Routed) -> Receipt:
        """Store and queue its task (submission.accept, as for REST): the C-STORE's answer."""
        instance, route = routed.instance, routed.route
        task_id = instance.sop_instance_uid
        facts = {**_facts(received), "taskId": task_id, "rule": route.rule, "taskType": route.task_type}
        request = pb.SubmitAnalysisRequest(
            task_type=route.task_type, image_data=instance.data, task_id=task_id, options=route.options
        )
        request.metadata.CopyFrom(_metadata(received.calling_ae))
        try:
            accepted = await accept(
                self.store, self.settings, received.client, request,
                request_hash=instance_hash(instance, route), callback_required=False,
            )  # fmt: skip
        except DentalAIError as exc:
            return _refusal(exc, facts, task_id)
        except (RedisError, OSError) as exc:
            log.warning("task store unreachable: %s", type(exc).__name__, extra=facts)
            comment = "task store unreachable; retry later"
            return Receipt(status.OUT_OF_RESOURCES, "unavailable", comment, task_id)
        return Receipt(status.SUCCESS, "accepted" if accepted.created else "resent", task_id=task_id)

    async def record(self, received: Received, receipt: Receipt) -> None:
        """Count the outcome ({p}stats:dicom) and write the audit line."""
        outcome = "ok" if receipt.status == status.SUCCESS else f"{receipt.status:#06x}"
        line = {"clientId": received.client.id, "route": "C-STORE", "taskId": receipt.task_id}
        audit_log.info("access", extra={**line, "outcome": outcome})
        try:
            await self.store.redis.hincrby(self.store.keys.dicom_stats, receipt.outcome, 1)
        except (RedisError, OSError):
            pass  # the store is unreachable: the answer said so already


def _facts(received: Received) -> dict[str, Any]:
    """What a log line may say of a received instance: ids and its size, no tag's value."""
    return {
        "clientId": received.client.id, "callingAe": received.calling_ae, "sopClass": received.sop_class_uid,
        "bytes": len(received.data),
    }  # fmt: skip


def _metadata(calling_ae: str) -> struct_pb2.Struct:
    """The task's origin, readable by GET (no callback echoes it)."""
    metadata = struct_pb2.Struct()
    metadata.update({"source": "dicom", "callingAeTitle": calling_ae})
    return metadata


def _refusal(exc: DentalAIError, facts: dict[str, Any], task_id: str) -> Receipt:
    if exc.code == ErrorCode.QUEUE_FULL:
        log.warning("queue full: instance refused for now", extra=facts)
        return Receipt(status.OUT_OF_RESOURCES, "full", "queue full; retry later", task_id)
    if exc.code == ErrorCode.TASK_ID_CONFLICT:
        # The client's taskId (this SOP Instance UID) holds another submission: a REST task of
        # that id, or this instance routed otherwise before the rules changed. It stays as it is.
        log.warning("instance stored before as another submission; not analysed again", extra=facts)
        return Receipt(status.SUCCESS, "conflict", task_id=task_id)
    log.warning("instance refused by the submission rules", extra={**facts, "code": int(exc.code)})
    return Receipt(status.REFUSED, "refused", f"refused ({int(exc.code)}): {exc.message}"[:64], task_id)
