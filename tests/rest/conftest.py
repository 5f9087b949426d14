"""REST test stacks: real redis-server, real `dentalai grpc` / echo worker / `dentalai dispatcher` /
`dentalai api` processes, and a real loopback callback receiver.

- `rest` (module): the whole service with one client, `clinic` (keys KEYS[0] and KEYS[1], as
  during a rotation), and two signing secrets; `.http` is an httpx.Client with KEYS[0].
- `bridge_to(settings)`: an in-process bridge (create_app over httpx.ASGITransport) talking to a
  real gRPC server, for the stacks that only a few tests need (no worker, Redis down, gRPC down).
  `grpc_for(settings)` runs that real gRPC server (grpc_server.server.build_server) in the test's
  event loop; no worker or dispatcher runs beside it, so submitted tasks stay QUEUED.
- helpers: `analyze_body(callback_url, **fields)` (a valid pano body with a small PNG),
  `assert_error(response, status, code)` (the error envelope; returns its details),
  `callbacks_for(receiver, task_id, count)` (wait for that task's deliveries),
  `wait_task(http, task_id, done)` (GET until `done(task)`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from dentalai.config import Settings
from grpc_server.server import build_server
from rest_bridge.app import create_app
from tests.backbone.helpers import png_bytes
from tests.conftest import (
    CallbackReceiver,
    Processes,
    ReceivedRequest,
    RedisServer,
    api_key,
    client_entry,
    make_settings,
    start_callback_receiver,
)

KEYS = [api_key("clinic-key-a"), api_key("clinic-key-b")]
SECRETS = ["secret-old-0123456789abcdef0123456789abcdef", "secret-new-0123456789abcdef0123456789abcdef"]
MAX_IMAGE = 1_000_000  # shortened limits.max_image_bytes (contract default 20 MiB)
MAX_BODY = 1_500_000  # shortened api.max_body_bytes


@dataclass
class RestStack:
    settings: Settings
    url: str
    http: httpx.Client
    receiver: CallbackReceiver
    processes: Processes


def stack_settings(redis_url: str, **overrides: object) -> Settings:
    base = make_settings(
        redis_url,
        auth={"clients": [client_entry("clinic", *KEYS)]},
        limits={"max_image_bytes": MAX_IMAGE, "min_image_side": 16},
        api={"max_body_bytes": MAX_BODY},
        callbacks={"signing_secrets": SECRETS, "retry_delays_s": [0.2, 0.2, 0.2]},
    )
    return base.with_overrides(**overrides) if overrides else base


@pytest.fixture(scope="module")
def rest(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestStack]:
    settings = stack_settings(
        redis_server.url, worker={"models_dir": str(tmp_path_factory.mktemp("nomodels"))}
    )
    procs = Processes(log_dir=tmp_path_factory.mktemp("rest"))
    receiver = start_callback_receiver()
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready", timeout=60)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        procs.start(["api"], settings, wait_port=settings.api.port)
        url = f"http://127.0.0.1:{settings.api.port}"
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEYS[0]}"}, timeout=10) as http:
            yield RestStack(settings, url, http, receiver, procs)
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        receiver.server.server_close()


@asynccontextmanager
async def grpc_for(settings: Settings) -> AsyncIterator[None]:
    """The real gRPC server on settings.grpc.port, in this event loop (no worker, no dispatcher)."""
    server, _port, _health = await build_server(settings)
    await server.start()
    try:
        yield
    finally:
        await server.stop(grace=None)


@asynccontextmanager
async def bridge_to(settings: Settings, token: str | None = KEYS[0]) -> AsyncIterator[httpx.AsyncClient]:
    """The bridge app of `settings` in process; its gRPC channel goes to settings.api.grpc_target."""
    app = create_app(settings)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers) as c:
            yield c
    finally:
        await app.state.link.close()


# ---- helpers ----------------------------------------------------------------------------------

SMALL_PNG = base64.b64encode(png_bytes(64, 48)).decode()


def analyze_body(callback_url: str, **fields: object) -> dict[str, object]:
    """A valid POST /api/v1/analyze body; `fields` change or add keys (None removes one)."""
    body: dict[str, object] = {"taskType": "pano", "imageBase64": SMALL_PNG, "callbackUrl": callback_url}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def assert_error(response: httpx.Response, status: int, code: int) -> list[dict[str, str]]:
    """The answer is the contract's error envelope with this HTTP status and code; its details."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    for detail in body["details"]:
        assert set(detail) == {"field", "reason"} and all(isinstance(v, str) for v in detail.values())
    return body["details"]


def callbacks_for(
    receiver: CallbackReceiver, task_id: str, count: int = 1, timeout: float = 20.0
) -> list[ReceivedRequest]:
    """Block until `count` deliveries for `task_id` reached the receiver; return them in order."""

    def mine() -> list[ReceivedRequest]:
        return [r for r in receiver.requests if json.loads(r.body).get("taskId") == task_id]

    with receiver._cond:
        if not receiver._cond.wait_for(lambda: len(mine()) >= count, timeout=timeout):
            raise TimeoutError(f"{len(mine())} of {count} callbacks for {task_id} after {timeout}s")
        return mine()


def wait_task(http: httpx.Client, task_id: str, done: Callable[[dict], bool], timeout: float = 20.0) -> dict:
    """GET the task until `done(task)`; the last task seen when it times out is in the error."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task = response.json()["data"]
        if done(task):
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id}: {task}")
        time.sleep(0.05)
