"""The contract's shared constants and its one decoder of rich gRPC errors.

Client, REST bridge, UI and server all import these from here (the bridge and the UI never
import the server package), so the error domain and the set of final statuses cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.rpc import error_details_pb2, status_pb2

from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import task_pb2

# google.rpc.ErrorInfo.domain of every contract error; its reason is the numeric code.
ERROR_DOMAIN = "dentalai"
# The trailer that carries the serialized google.rpc.Status (gRPC's rich error model).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

FINAL_STATUSES = frozenset({task_pb2.SUCCEEDED, task_pb2.FAILED, task_pb2.CANCELLED})
FINAL_STATUS_NAMES = frozenset(task_pb2.TaskStatus.Name(s) for s in FINAL_STATUSES)
# Finding types a pano result can carry and options.findings may name; a findings model's manifest
# may provide no other (pipelines/pano/findings.py checks it at load).
FINDING_TYPES: tuple[str, ...] = ("caries", "periapical")
# Types that are lesions of a tooth by definition: one found near no tooth is not reported (its
# `fdi` is never 0). Another type (a lesion of the bone, the sinus) may keep `fdi` 0.
TOOTH_LESIONS: frozenset[str] = frozenset({"caries", "periapical"})
# Lesions of a tooth's hard tissue (enamel, dentine): most of one lies inside its tooth's outline, so
# a blob mostly outside every tooth (bone, soft tissue, brackets) is not reported as one. A periapical
# lesion lies in the bone around the apex, outside the outline.
WITHIN_TOOTH: frozenset[str] = frozenset({"caries"})
# Lesions that start on a surface exposed in the mouth: not reported on a permanent tooth still in
# the bone (mixed dentition: pipelines.pano.numbering.unerupted), whose crown a model trained on
# adults' films reads as a lesion.
ERUPTED_ONLY: frozenset[str] = frozenset({"caries"})


def rich_status(trailing_metadata: Iterable[tuple[str, Any]] | None) -> status_pb2.Status | None:
    """The google.rpc.Status in a call's trailers (sync or grpc.aio), or None."""
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:  # noqa: BLE001 (a foreign trailer is simply not ours)
                return None
            return status
    return None


def contract_error(status: status_pb2.Status | None) -> DentalAIError | None:
    """The contract error a rich status carries (ErrorInfo reason, BadRequest field violations);
    None when it carries no ErrorInfo of our domain (a proxy, a dead server, a deadline): what
    that means is the caller's to decide."""
    if status is None:
        return None
    code: ErrorCode | None = None
    details: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN and info.reason.isdigit():
                try:
                    code = ErrorCode(int(info.reason))
                except ValueError:
                    code = ErrorCode.INTERNAL  # a code newer than this client
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            details += [(v.field, v.description) for v in bad.field_violations]
    if code is None:
        return None
    return DentalAIError(code, status.message or code.name.lower(), details)
