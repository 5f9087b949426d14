"""Pure ASGI middleware (no per-request task overhead): request checks before any parsing, and the
latency histogram."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dentalai.errors import ErrorCode
from rest_bridge.errors import error_body, http_status
from rest_bridge.metrics import Metrics

JSON_ROUTES = {("POST", "/api/v1/analyze")}


async def send_error(
    send: Send, code: int, message: str, details: list[tuple[str, str]] | None = None
) -> None:
    body = json.dumps(error_body(code, message, details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": http_status(code),
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# How much of a refused body is read and dropped before answering. Clients such as urllib and
# requests write the whole body before they read: closing on them mid-write turns the 413/415
# into a broken pipe. Past this bound the connection is closed after the answer instead.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


async def drain(receive: Receive, declared: str, already: int = 0) -> None:
    """Read and discard the rest of the request body, up to DRAIN_LIMIT_BYTES in all."""
    if declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        return
    size = already
    while size <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# gRPC metadata carries printable ASCII only, and a few KiB at most: anything else cannot be a token.
MAX_AUTHORIZATION_CHARS = 4096


def valid_authorization(value: str) -> bool:
    return 0 < len(value) <= MAX_AUTHORIZATION_CHARS and all(" " <= c <= "~" for c in value)


def host_name(host: str) -> str:
    """The name of a Host header without its port ("[::1]:8000" -> "[::1]")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestGuard:
    """In the open development mode, every request whose Host is not an allowed name answers 400
    (a page on another site cannot reach a keyless service through DNS rebinding). For /api/
    routes, in this order: 401 when auth is on and no Authorization header was sent,
    or one that no key can match (not printable ASCII, too long; the key itself is checked by
    the gRPC server); 415 when a JSON route gets another content
    type; 413 when the body exceeds max_body_bytes - by Content-Length, or by counting while
    reading, before anything parses it. The body read here is replayed to the app."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, auth_on: bool, open_hosts: list[str] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.auth_on = auth_on
        self.open_hosts = {h.lower() for h in open_hosts} if open_hosts is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.open_hosts is not None and host_name(headers.get("host", "")) not in self.open_hosts:
            await send_error(send, ErrorCode.INVALID_PARAMETER, "Host not allowed (auth.open_hosts)")
            return
        if not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        has_body = declared not in ("", "0") or "transfer-encoding" in headers
        refusal: tuple[ErrorCode, str] | None = None
        json_route = (scope["method"], scope["path"]) in JSON_ROUTES
        if self.auth_on and not valid_authorization(headers.get("authorization", "")):
            refusal = ErrorCode.UNAUTHENTICATED, "missing or malformed bearer token (Authorization header)"
        elif json_route and not _is_json(headers.get("content-type", "")):
            refusal = ErrorCode.UNSUPPORTED_MEDIA_TYPE, "content type must be application/json"
        elif declared.isdigit() and int(declared) > self.max_body_bytes:
            refusal = ErrorCode.BODY_TOO_LARGE, f"body larger than {self.max_body_bytes} bytes"
        if refusal is not None:
            if has_body:
                await drain(receive, declared)
            await send_error(send, *refusal)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and not declared:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body", False):
                    await drain(receive, declared, size)
                await send_error(
                    send, ErrorCode.BODY_TOO_LARGE, f"body larger than {self.max_body_bytes} bytes"
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later: disconnect notifications

        await self.app(scope, replay, send)


class LatencyMetrics:
    """Observes every request's duration by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or (
                "/api/other" if scope["path"].startswith("/api/") else "other"
            )
            self.metrics.observe(template, scope["method"], status[0], time.perf_counter() - start)
