"""REST test stacks: real redis-server, real `dentalai grpc` / echo worker / `dentalai dispatcher` /
`dentalai api` processes, and a real loopback callback receiver.

- `rest` (module): the whole service with bearer auth on (tokens tok-a, tok-b) and two signing
  secrets; `.http` is an httpx.Client with tok-a.
- `bridge_to(settings)`: an in-process bridge (create_app over httpx.ASGITransport) talking to a
  real gRPC server, for the stacks that only a few tests need (no worker, Redis down, gRPC down).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from dentalai.config import Settings
from tests.conftest import (
    CallbackReceiver,
    Processes,
    RedisServer,
    make_settings,
    start_callback_receiver,
)

TOKENS = ["tok-a", "tok-b"]
SECRETS = ["secret-old", "secret-new"]
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
        auth={"tokens": TOKENS},
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
        with httpx.Client(base_url=url, headers={"authorization": "Bearer tok-a"}, timeout=10) as http:
            yield RestStack(settings, url, http, receiver, procs)
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        receiver.server.server_close()
