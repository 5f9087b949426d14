"""Contract errors as HTTP answers: status per code, the error envelope, gRPC failures decoded."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from dentalai.errors import DentalAIError, ErrorCode
from rest_bridge.models import ErrorEnvelope

HTTP_STATUS: dict[int, int] = {
    ErrorCode.INVALID_PARAMETER: 400,
    ErrorCode.UNSUPPORTED_TASK_TYPE: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.TASK_ID_CONFLICT: 409,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.QUEUE_UNAVAILABLE: 503,
    ErrorCode.TASK_NOT_FOUND: 404,
    ErrorCode.TASK_NOT_CANCELLABLE: 409,
    ErrorCode.ARTIFACT_NOT_AVAILABLE: 404,
}
# Retry-After of a 429 (queue full): a short wait, the queue drains at worker speed.
QUEUE_FULL_RETRY_AFTER_S = 5

# For OpenAPI: which error answers each route documents.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in [
        (400, "10001 invalid parameter, 10002 unsupported taskType"),
        (401, "10003 missing or wrong credentials"),
        (404, "10009 task unknown or expired, 10011 artifact not available"),
        (409, "10004 taskId used with a different body, 10010 task not cancellable / not finished"),
        (413, "10005 request body too large"),
        (415, "10006 content type is not JSON"),
        (429, "10007 queue full (Retry-After set)"),
        (503, "10008 queue store or gRPC service unreachable; nothing was accepted"),
    ]
}


def error_body(code: int, message: str, details: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    return {
        "code": int(code),
        "message": message,
        "details": [{"field": f, "reason": r} for f, r in details or []],
    }


def http_status(code: int) -> int:
    return HTTP_STATUS.get(code, 500)


def retry_headers(code: int) -> dict[str, str]:
    return {"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)} if code == ErrorCode.QUEUE_FULL else {}


def from_rpc(err: grpc.aio.AioRpcError) -> DentalAIError:
    """The contract error carried in the call's rich status (ErrorInfo reason, BadRequest fields).

    A status without ErrorInfo did not come from our service (the server is down, unreachable or
    too slow): 10008, since nothing can have been accepted that we know of."""
    status = _rich_status(err)
    code: int | None = None
    details: list[tuple[str, str]] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == "dentalai" and info.reason.isdigit():
                code = int(info.reason)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            details += [(v.field, v.description) for v in bad.field_violations]
    if code is None:
        if err.code() == grpc.StatusCode.UNAUTHENTICATED:
            return DentalAIError(ErrorCode.UNAUTHENTICATED, err.details() or "unauthenticated")
        return DentalAIError(
            ErrorCode.QUEUE_UNAVAILABLE, "analysis service unavailable; nothing was accepted"
        )
    try:
        known = ErrorCode(code)
    except ValueError:
        known = ErrorCode.INTERNAL
    return DentalAIError(known, (status.message if status else "") or err.details() or "", details)


def _rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:  # noqa: BLE001 (a foreign trailer is simply not ours)
                return None
            return status
    return None
