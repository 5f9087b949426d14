"""The REST bridge: the routes of CONTRACT.md section 1, each one gRPC call on one reused channel.

Validation of values (taskType, URLs, ids, sizes) lives in the gRPC service; here only what REST
alone has: JSON shape and types, base64, body size and content type. Auth is checked by the gRPC
server: the client's Authorization header travels as gRPC metadata.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pybase64
import uvicorn
import uvloop
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format, struct_pb2
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from artifacts.kinds import KINDS
from dentalai.config import Settings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.task_json import task_dict
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import results_pb2, task_pb2
from rest_bridge.errors import ERROR_RESPONSES, error_body, from_rpc, http_status, retry_headers
from rest_bridge.metrics import Metrics
from rest_bridge.middleware import LatencyMetrics, RequestGuard, valid_authorization
from rest_bridge.models import AnalyzeBody, Envelope

REF_TEMPLATE = "#/components/schemas/{model}"
_DATA_URL = re.compile(r"^data:[^,;]*(;[^,;]*)*;base64,", re.IGNORECASE)
STATUS_TIMEOUT_S = 2.0


class GrpcLink:
    """One grpc.aio channel for the whole process, opened on first use (inside the server's loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.AnalysisServiceStub | None = None

    @property
    def stub(self) -> pb_grpc.AnalysisServiceStub:
        if self._stub is None:
            limit = self.settings.api.max_body_bytes + 1024 * 1024
            api = self.settings.api
            options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", 64 << 20)]
            if api.grpc_tls:
                ca = Path(api.grpc_tls_ca).read_bytes() if api.grpc_tls_ca else None
                credentials = grpc.ssl_channel_credentials(root_certificates=ca)
                self._channel = grpc.aio.secure_channel(api.grpc_target, credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(api.grpc_target, options=options)
            self._stub = pb_grpc.AnalysisServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None

    async def call(self, method: str, message: Any, request: Request | None = None) -> Any:
        """Call `method` with the caller's own Authorization (the bridge has no key of its own:
        the gRPC service decides whose call it is); without a request, an open method (the
        service status). Failures become DentalAIError."""
        metadata: tuple[tuple[str, str], ...] = ()
        timeout = STATUS_TIMEOUT_S
        if request is not None:
            auth = request.headers.get("authorization", "")
            if valid_authorization(auth):  # gRPC refuses to send other values at all
                metadata = (("authorization", auth),)
            timeout = self.settings.api.request_timeout_s
        try:
            return await getattr(self.stub, method)(message, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            raise from_rpc(err) from None


def envelope(message: str, data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": 0, "message": message, "data": data}, status_code=status)


def error_response(error: DentalAIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=http_status(error.code),
        headers=retry_headers(error.code),
    )


def _invalid(field: str, reason: str) -> DentalAIError:
    return DentalAIError(ErrorCode.INVALID_PARAMETER, f"{field}: {reason}", [(field, reason)])


def decode_image(text: str, max_bytes: int) -> bytes:
    """Standard base64, a data-URL prefix and line breaks allowed; 10001 when it is not base64 or
    clearly too large to decode. Empty and exact-size checks are the gRPC service's (one place)."""
    if text[:5].lower() == "data:":
        text = _DATA_URL.sub("", text, count=1)
    if len(text) // 4 * 3 > max_bytes + 3:  # refuse before decoding a huge string
        raise _invalid("imageBase64", f"image larger than {max_bytes} bytes")
    # pybase64 decodes with SIMD: the standard library's decoder took 0.2 ms per 64 KiB image,
    # the largest single cost of a submission in the bridge.
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    # Line breaks (allowed) fail validation: only then are they dropped and the text tried again.
    text = "".join(text.split())
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    # pybase64 refuses a few texts the standard library accepts (padding after a whole group, as in
    # "0000="): the standard library has the last word, on this path of refusals only.
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("imageBase64", "not valid base64") from None


def submit_request(body: AnalyzeBody, settings: Settings) -> pb.SubmitAnalysisRequest:
    """The gRPC request of a REST body (checks only what the proto cannot carry)."""
    has_url, has_data = body.imageUrl is not None, body.imageBase64 is not None
    if has_url == has_data:
        raise _invalid("imageUrl" if not has_url else "imageBase64", "exactly one of imageUrl or imageBase64")
    if body.taskId == "":  # the proto cannot tell "" from absent (which generates an id)
        raise _invalid("taskId", "must match [A-Za-z0-9._-]{1,64}")
    request = pb.SubmitAnalysisRequest(
        task_type=body.taskType, callback_url=body.callbackUrl, task_id=body.taskId or ""
    )
    if body.imageUrl is not None:
        request.image_url = body.imageUrl
    else:
        request.image_data = decode_image(body.imageBase64 or "", settings.limits.max_image_bytes)
    if body.metadata is not None:
        try:
            request.metadata.CopyFrom(json_format.ParseDict(body.metadata, struct_pb2.Struct()))
        except json_format.ParseError as exc:
            raise _invalid("metadata", str(exc)[:200]) from None
    if body.options is not None:
        if body.options.pixelSpacingMm is not None:
            request.options.pixel_spacing_mm = body.options.pixelSpacingMm
        if body.options.toothNumbering is not None:
            request.options.tooth_numbering = results_pb2.ToothNumbering.Value(body.options.toothNumbering)
        if body.options.artifacts is not None:
            request.options.artifacts.extend(body.options.artifacts)
        if body.options.findings is not None:
            request.options.findings.extend(body.options.findings)
        if body.options.deidentify is not None:
            request.options.deidentify = body.options.deidentify
        if body.options.exportTo is not None:
            request.options.export_to = body.options.exportTo
    return request


def parse_body(raw: bytes) -> AnalyzeBody:
    """The POST body, parsed and validated in one pass by pydantic-core: FastAPI's own path (json.loads,
    then validation of the dict) cost about 10 % of the bridge's CPU per submission. Errors are
    FastAPI's, located under "body", so that 10001's details read the same."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return AnalyzeBody.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def body_schemas() -> dict[str, Any]:
    """AnalyzeBody and the models inside it as OpenAPI components: the analyze route reads its raw
    body, so FastAPI does not collect them itself."""
    _, schemas = models_json_schema([(AnalyzeBody, "validation")], ref_template=REF_TEMPLATE)
    return schemas["$defs"]


def _validation_details(exc: RequestValidationError) -> list[tuple[str, str]]:
    reasons = {
        "missing": "required",
        "extra_forbidden": "unknown field",
        "json_invalid": "invalid JSON",
        "string_type": "must be a string",
        "float_type": "must be a number",
        "dict_type": "must be an object",
        "model_attributes_type": "must be a JSON object",
        "model_type": "must be a JSON object",
    }
    details: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(p for p in loc if not p.isdigit()) or "body"
        details.append((field, reasons.get(err.get("type", ""), err.get("msg", "invalid"))))
    return list(dict.fromkeys(details))


def artifact_route(link: GrpcLink, name: str) -> Any:
    """GET of one artifact: the file as the worker made it (the bridge never renders)."""

    async def get_artifact(taskId: str, request: Request) -> Response:  # noqa: N803 (contract name)
        reply = await link.call("GetArtifact", pb.GetArtifactRequest(task_id=taskId, name=name), request)
        disposition = "inline" if reply.media_type in ("image/png", "application/pdf") else "attachment"
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"{taskId}-{name}")
        headers = {"Content-Disposition": f'{disposition}; filename="{filename}"'}
        return Response(reply.data, media_type=reply.media_type, headers=headers)

    return get_artifact


def build_router(settings: Settings, link: GrpcLink, metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/api/v1/analyze",
        status_code=202,
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        summary="Submit an analysis (answers at once; the result goes to callbackUrl)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF_TEMPLATE.format(model=AnalyzeBody.__name__)}}}}},
    )
    async def analyze(request: Request) -> JSONResponse:
        body = parse_body(await request.body())
        reply = await link.call("SubmitAnalysis", submit_request(body, settings), request)
        data = {"taskId": reply.task_id, "status": task_pb2.TaskStatus.Name(reply.status)}
        return envelope("accepted", data, 202)

    @router.get(
        "/api/v1/tasks/{taskId}", response_model=Envelope, responses=ERROR_RESPONSES, summary="Read a task"
    )
    async def get_task(taskId: str, request: Request) -> JSONResponse:  # noqa: N803 (contract name)
        reply = await link.call("GetTask", pb.GetTaskRequest(task_id=taskId), request)
        return envelope("ok", task_dict(reply.task))

    @router.delete(
        "/api/v1/tasks/{taskId}",
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        summary="Cancel a QUEUED task; erase a finished one (result, artifacts, image) at once",
    )
    async def cancel_task(taskId: str, request: Request) -> JSONResponse:  # noqa: N803
        reply = await link.call("CancelTask", pb.CancelTaskRequest(task_id=taskId), request)
        if reply.erased:
            return envelope("erased", {"taskId": reply.task.task_id, "erased": True})
        return envelope("cancelled", task_dict(reply.task))

    @router.post(
        "/api/v1/tasks/{taskId}/callback",
        status_code=202,
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        summary="Send a finished task's result to its callbackUrl again",
    )
    async def resend_callback(taskId: str, request: Request) -> JSONResponse:  # noqa: N803
        reply = await link.call("ResendCallback", pb.ResendCallbackRequest(task_id=taskId), request)
        return envelope("callback scheduled", task_dict(reply.task), 202)

    for kind in KINDS.values():
        router.add_api_route(
            f"/api/v1/tasks/{{taskId}}/{kind.name}",
            artifact_route(link, kind.name),
            methods=["GET"],
            response_class=Response,
            responses={200: {"content": {kind.media_type: {}}}, **ERROR_RESPONSES},
            summary=f"{kind.name} of a finished task ({kind.media_type})",
        )

    @router.get("/healthz", response_model=Envelope, summary="The bridge process is alive")
    async def healthz() -> JSONResponse:
        return envelope("alive", None)

    @router.get(
        "/readyz",
        response_model=Envelope,
        responses={503: ERROR_RESPONSES[503]},
        summary="Queue store reachable and a worker with loaded models seen recently",
    )
    async def readyz() -> JSONResponse:
        try:
            status = await link.call("GetServiceStatus", pb.GetServiceStatusRequest())
        except DentalAIError as exc:
            return error_response(DentalAIError(ErrorCode.QUEUE_UNAVAILABLE, f"not ready: {exc.message}"))
        # What the live workers have loaded, so a deployment can tell "up" from "up with models".
        data = {
            "storeReachable": status.store_reachable,
            "ready": status.ready,
            "workers": len(status.workers),
            "models": sorted({m for w in status.workers for m in w.models}),
            "taskTypes": sorted({t for w in status.workers for t in w.task_types}),
            "runtimes": sorted({w.runtime for w in status.workers}),
        }
        if not status.ready:
            reason = (
                "queue store unreachable" if not status.store_reachable else "no ready worker seen recently"
            )
            body = error_body(ErrorCode.QUEUE_UNAVAILABLE, f"not ready: {reason}")
            return JSONResponse({**body, "data": data}, status_code=503)
        return envelope("ready", data)

    if settings.api.metrics_enabled:

        @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
        async def prometheus() -> Response:
            try:
                status = await link.call("GetServiceStatus", pb.GetServiceStatusRequest())
            except DentalAIError:
                status = None
            return Response(metrics.render(status), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def create_app(settings: Settings) -> FastAPI:
    link = GrpcLink(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await link.close()

    app = FastAPI(
        title="dentalai REST API",
        version="1",
        description="Dental radiograph analysis (CONTRACT.md section 1). Errors answer "
        '`{"code": N, "message": "...", "details": [{"field", "reason"}]}`.',
        lifespan=lifespan,
    )
    app.state.link = link
    app.state.metrics = metrics
    app.include_router(build_router(settings, link, metrics))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            FastAPI.openapi(app)["components"]["schemas"].update(body_schemas())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(DentalAIError)
    async def contract_error(request: Request, exc: DentalAIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def no_route(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown path or method: the envelope still, with the HTTP status Starlette chose.
        body = error_body(ErrorCode.INVALID_PARAMETER, f"{request.method} {request.url.path}: {exc.detail}")
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still the envelope (Starlette would answer plain text); the error is logged by the server.
        return error_response(DentalAIError(ErrorCode.INTERNAL, "internal error"))

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        message = "; ".join(f"{f}: {r}" for f, r in details) or "invalid request"
        return error_response(DentalAIError(ErrorCode.INVALID_PARAMETER, message, details))

    # Outermost first: latency covers the guard's answers too.
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.api.max_body_bytes,
        auth_on=not settings.auth.open,
        open_hosts=settings.auth.open_hosts if settings.auth.open else None,
    )
    app.add_middleware(LatencyMetrics, metrics=metrics)
    return app


def serve(settings: Settings) -> None:
    """Entry point of `dentalai api`: uvicorn on api.host:api.port (logging stays the CLI's JSON)."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvloop.run(uvicorn.Server(config).serve())
