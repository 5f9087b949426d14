"""Contract errors as gRPC rich status, and the interceptor that refuses unknown callers.

Every error carries `google.rpc.ErrorInfo(reason=str(code), domain="dentalai")` in the
`grpc-status-details-bin` trailer; field problems (10001) also carry a `google.rpc.BadRequest`
whose field violations (field = REST camelCase name, description = reason) are the REST `details`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from dentalai.contract import ERROR_DOMAIN
from dentalai.errors import DentalAIError, ErrorCode
from grpc_server.clients import Clients

GRPC_CODE = {
    ErrorCode.INVALID_PARAMETER: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNSUPPORTED_TASK_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.TASK_ID_CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.BODY_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.QUEUE_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.QUEUE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.TASK_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.TASK_NOT_CANCELLABLE: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.ARTIFACT_NOT_AVAILABLE: grpc.StatusCode.NOT_FOUND,
}


def to_grpc_status(error: DentalAIError) -> grpc.Status:
    details = [any_pb2.Any()]
    details[0].Pack(error_details_pb2.ErrorInfo(reason=str(int(error.code)), domain=ERROR_DOMAIN))
    if error.details:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=r) for f, r in error.details
            ]
        )
        details.append(any_pb2.Any())
        details[1].Pack(bad)
    code = GRPC_CODE.get(error.code, grpc.StatusCode.INTERNAL)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=error.message, details=details))


def unauthenticated() -> DentalAIError:
    return DentalAIError(
        ErrorCode.UNAUTHENTICATED, "missing or unknown API key (authorization: Bearer <key>)"
    )


async def abort(context: grpc.aio.ServicerContext, error: DentalAIError) -> None:
    """End the call with the error's rich status (raises, like context.abort)."""
    status = to_grpc_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


# Health checks, reflection and the service status (queue depth and workers: no task, no patient
# data) stay open so that probes, grpcurl and the bridge's /readyz work without a key.
OPEN_METHODS = ("/grpc.health.v1.", "/grpc.reflection.", "/dentalai.v1.AnalysisService/GetServiceStatus")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses (10003) a call whose bearer key belongs to no client, before the servicer runs.
    The servicer resolves the same key again (grpc_server.clients) to know whose call it is."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHODS):
            return handler
        if self.clients.resolve(handler_call_details.invocation_metadata) is not None:
            return handler
        error = unauthenticated()

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await abort(context, error)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await abort(context, error)
            yield  # pragma: no cover (makes this an async generator)

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                deny_stream, handler.request_deserializer, handler.response_serializer
            )
        return grpc.unary_unary_rpc_method_handler(
            deny, handler.request_deserializer, handler.response_serializer
        )
