"""The one Task -> JSON mapping: the REST answers, the callback body, the gRPC client, the UI and
`dentalai analyze` all print tasks and results through it.

Everything is the proto3 JSON mapping (camelCase, default-valued fields printed), so REST and
callbacks show a result exactly as the .proto defines it; one exception: the int64 timing fields
are plain JSON numbers, as in the callback body, not the mapping's strings.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from google.protobuf import json_format
from google.protobuf.message import Message

from artifacts.kinds import callback_artifacts
from dentalai.v1 import task_pb2


def message_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def tooth_designation(tooth: Mapping[str, Any], numbering: str) -> str:
    """How a result's tooth (Tooth as JSON) is named in the result's numbering: its FDI number, or its
    Universal designation ("1"-"32", primary teeth "A"-"T", whose `number` is 0)."""
    if numbering == "UNIVERSAL":
        return str(tooth.get("universalLabel") or tooth.get("number") or "")
    return str(tooth.get("fdi") or tooth.get("number") or "")


class TypeStatus(NamedTuple):
    type: str
    text: str  # "2 found", "none found", "not assessed: <reason>"
    assessed: bool


def findings_status(data: Mapping[str, Any]) -> list[TypeStatus]:
    """What a pano result (PanoResult as JSON) says of each finding type it was to report. An empty
    finding list means "none" only for the types assessed; the overlay, the PDF and the UI say which."""
    counts = Counter(str(f.get("type", "")) for f in data.get("findings") or [])
    rows = [TypeStatus(kind, f"{counts[kind]} found" if counts.get(kind) else "none found", True)
            for kind in data.get("findingsAssessed") or []]
    rows += [TypeStatus(str(n.get("type", "")), f"not assessed: {n.get('reason', '')}", False)
             for n in data.get("findingsNotAssessed") or []]
    return rows


def model_label(model: Mapping[str, Any]) -> str:
    """"name version" of a result's model (ModelInfo as JSON), with each further model it ran after a
    "+": "ceph-landmarks 1.1.0 + ceph-landmarks-refine 1.0.0". Empty when unknown."""
    parts = [model, *(model.get("components") or [])]
    return " + ".join(f"{m.get('name', '')} {m.get('version', '')}".strip() for m in parts if m.get("name"))


def task_dict(task: task_pb2.Task) -> dict[str, Any]:
    """The whole task as REST GET /api/v1/tasks/{id} shows it (result under `pano` or `ceph`)."""
    data = message_dict(task)
    if "timing" in data:
        data["timing"] = timing_dict(task)
    return data


def timing_dict(task: task_pb2.Task) -> dict[str, int]:
    """Plain JSON numbers (the proto3 JSON mapping would print int64 as strings)."""
    return {
        "queuedMs": task.timing.queued_ms,
        "processingMs": task.timing.processing_ms,
        "totalMs": task.timing.total_ms,
    }


def result_dict(task: task_pb2.Task) -> dict[str, Any] | None:
    which = task.WhichOneof("result")
    return message_dict(getattr(task, which)) if which else None


def callback_body(task: task_pb2.Task) -> dict[str, Any]:
    """The callback body of CONTRACT.md section 4 for a finished task."""
    failed = task.status == task_pb2.FAILED
    return {
        "taskId": task.task_id,
        "taskType": task.task_type,
        "status": task_pb2.TaskStatus.Name(task.status),
        "code": task.error.code if failed else 0,
        "message": task.error.message if failed else "succeeded",
        "data": None if failed else result_dict(task),
        "metadata": json_format.MessageToDict(task.metadata) if task.HasField("metadata") else {},
        "model": {"name": task.model.name, "version": task.model.version},
        "timing": timing_dict(task),
        "completedAt": task.finished_at.ToJsonString() if task.HasField("finished_at") else None,
        **callback_artifacts(task),
    }


def callback_bytes(task: task_pb2.Task) -> bytes:
    """The body as sent (and signed): compact UTF-8 JSON."""
    return json.dumps(callback_body(task), separators=(",", ":"), ensure_ascii=False).encode()
