"""A small typed gRPC client of `dentalai.v1.AnalysisService` for internal services.

    with AnalysisClient("localhost:50051", token="...") as client:
        task = client.analyze("ceph", image_data=path.read_bytes(), callback_url=url, timeout=120)

Every RPC error is raised as `DentalAIError` carrying the contract code, read from the
`google.rpc.ErrorInfo` (domain `dentalai`, reason = code) in the call's rich status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from dentalai.contract import contract_error, rich_status
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import results_pb2, task_pb2

# Used only when a status carries no ErrorInfo (a proxy, a dead server, a client-side deadline).
_FALLBACK_CODES: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_PARAMETER,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.TASK_ID_CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.QUEUE_FULL,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.QUEUE_UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: ErrorCode.TASK_NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.TASK_NOT_CANCELLABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.PROCESSING_TIMEOUT,
}


def error_from_rpc(err: grpc.RpcError) -> DentalAIError:
    """The contract error of a failed call (decoded by dentalai.contract from its rich status)."""
    call = err if isinstance(err, grpc.Call) else None
    error = contract_error(rich_status(call.trailing_metadata())) if call is not None else None
    if error is not None:
        return error
    grpc_code = call.code() if call is not None else None
    code = _FALLBACK_CODES.get(grpc_code, ErrorCode.INTERNAL) if grpc_code else ErrorCode.INTERNAL
    name = grpc_code.name if grpc_code else "error"
    message = (call.details() if call is not None else "") or f"gRPC {name}"
    return DentalAIError(code, message)


def build_request(
    task_type: str,
    *,
    image_data: bytes | None = None,
    image_url: str | None = None,
    callback_url: str,
    task_id: str = "",
    metadata: Mapping[str, Any] | None = None,
    pixel_spacing_mm: float | None = None,
    tooth_numbering: str | None = None,
    findings: Sequence[str] | None = None,
) -> pb.SubmitAnalysisRequest:
    """A SubmitAnalysisRequest; exactly one of image_data / image_url (the server checks it too)."""
    request = pb.SubmitAnalysisRequest(task_type=task_type, callback_url=callback_url, task_id=task_id)
    if image_data is not None:
        request.image_data = image_data
    if image_url is not None:
        request.image_url = image_url
    if metadata:
        request.metadata.CopyFrom(json_format.ParseDict(dict(metadata), struct_pb2.Struct()))
    if pixel_spacing_mm is not None:
        request.options.pixel_spacing_mm = pixel_spacing_mm
    if tooth_numbering:
        request.options.tooth_numbering = results_pb2.ToothNumbering.Value(tooth_numbering.upper())
    if findings:
        request.options.findings.extend(findings)
    return request


# Artifacts (an uncompressed image.dcm, a PDF) pass gRPC's 4 MiB default answer size.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

class AnalysisClient:
    """Synchronous client; one channel, reused by every call. Thread-safe like grpc channels."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        secure: bool = False,
        timeout: float = 30.0,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = _strip_scheme(target)
        self.timeout = timeout
        self._metadata: Sequence[tuple[str, str]] = (("authorization", f"Bearer {token}"),) if token else ()
        if channel is not None:
            self._channel = channel
        elif secure:
            self._channel = grpc.secure_channel(self.target, grpc.ssl_channel_credentials(), CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(self.target, CHANNEL_OPTIONS)
        self._stub = pb_grpc.AnalysisServiceStub(self._channel)

    def __enter__(self) -> AnalysisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def submit(self, task_type: str, **kwargs: Any) -> pb.SubmitAnalysisResponse:
        """Queue a task (keyword arguments of `build_request`); answers at once."""
        return self._call(self._stub.SubmitAnalysis, build_request(task_type, **kwargs))

    def get(self, task_id: str) -> task_pb2.Task:
        return self._call(self._stub.GetTask, pb.GetTaskRequest(task_id=task_id)).task

    def cancel(self, task_id: str) -> task_pb2.Task:
        return self._call(self._stub.CancelTask, pb.CancelTaskRequest(task_id=task_id)).task

    def watch(self, task_id: str, timeout: float | None = None) -> Iterator[task_pb2.Task]:
        """Yields the task on each status change until it is final (or `timeout` passes)."""
        stream = self._stub.WatchTask(
            pb.WatchTaskRequest(task_id=task_id), timeout=timeout, metadata=self._metadata
        )
        try:
            for answer in stream:
                yield answer.task
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None
        finally:
            stream.cancel()

    def analyze(self, task_type: str, *, timeout: float | None = None, **kwargs: Any) -> task_pb2.Task:
        """Submit and wait for the final task within `timeout` seconds (the call's deadline)."""
        request = pb.AnalyzeRequest(request=build_request(task_type, **kwargs))
        return self._call(self._stub.Analyze, request, timeout=timeout).task

    def artifact(self, task_id: str, name: str) -> pb.GetArtifactResponse:
        """One artifact file of a finished task (overlay.png, report.pdf, report.dcm, ...)."""
        return self._call(self._stub.GetArtifact, pb.GetArtifactRequest(task_id=task_id, name=name))

    def service_status(self) -> pb.GetServiceStatusResponse:
        return self._call(self._stub.GetServiceStatus, pb.GetServiceStatusRequest())

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None


def _strip_scheme(target: str) -> str:
    # `--server grpc://host:port` and `http://host:port` read naturally on a command line.
    for scheme in ("grpc://", "http://", "dns:///"):
        if target.startswith(scheme):
            return target[len(scheme) :].rstrip("/")
    return target


def result_of(task: task_pb2.Task) -> results_pb2.CephResult | results_pb2.PanoResult | None:
    """The task's result message, or None when it has none."""
    which = task.WhichOneof("result")
    return getattr(task, which) if which else None
