"""Contract errors as HTTP answers: status per code, the error envelope, gRPC failures decoded."""

from __future__ import annotations

from typing import Any

import grpc

from dentalai.contract import contract_error, rich_status
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
    """The contract error carried in the call's rich status (dentalai.contract decodes it).

    A status without ErrorInfo did not come from our service (the server is down, unreachable or
    too slow): 10008, since nothing can have been accepted that we know of."""
    error = contract_error(rich_status(err.trailing_metadata()))
    if error is not None:
        return error
    if err.code() == grpc.StatusCode.UNAUTHENTICATED:
        return DentalAIError(ErrorCode.UNAUTHENTICATED, err.details() or "unauthenticated")
    return DentalAIError(ErrorCode.QUEUE_UNAVAILABLE, "analysis service unavailable; nothing was accepted")
