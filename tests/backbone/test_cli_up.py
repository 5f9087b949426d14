"""`dentalai up` starts redis, the gRPC server, a worker, the dispatcher, the REST bridge and the UI,
serves a task to a final state through REST, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from standardwebhooks.webhooks import Webhook

from dentalai.v1 import task_pb2
from tests.backbone.helpers import stub, submit_request, wait_status
from tests.conftest import REPO, free_port, start_callback_receiver, wait_port

pytestmark = pytest.mark.slow


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "up.log").read_text(errors="replace")


def test_processes_refuse_to_start_without_clients_or_open_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENTALAI_")}
    env.update(DENTALAI_REDIS_URL="redis://127.0.0.1:1/0", PYTHONPATH=str(REPO))
    for process in ("grpc", "api", "worker", "dispatcher"):
        done = subprocess.run(
            [sys.executable, "-m", "dentalai.cli", process], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2, (process, done.stderr)
        assert "no clients configured" in done.stderr and "DENTALAI_AUTH__OPEN" in done.stderr


def test_up_runs_the_service_and_stops_it(tmp_path: Path) -> None:
    grpc_port, api_port, ui_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENTALAI_")}
    env.update(
        DENTALAI_GRPC__PORT=str(grpc_port),
        DENTALAI_API__PORT=str(api_port),
        DENTALAI_API__GRPC_TARGET=f"127.0.0.1:{grpc_port}",
        DENTALAI_UI__PORT=str(ui_port),
        DENTALAI_WORKER__MODELS_DIR=str(tmp_path / "no-models"),  # every taskType: 12004
        DENTALAI_SSRF__ALLOW_CIDRS="[127.0.0.0/8]",
        PYTHONPATH=str(REPO),
    )
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [sys.executable, "-m", "dentalai.cli", "up"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    receiver = start_callback_receiver()
    try:
        wait_port(grpc_port, timeout=60)
        # Secure by default: no client configured, so `up` made the demo client's key.
        key = (tmp_path / "var" / "demo-client-key").read_text().strip()
        auth = (("authorization", f"Bearer {key}"),)
        channel, client = stub(f"127.0.0.1:{grpc_port}")
        with pytest.raises(grpc.RpcError) as refused:
            client.SubmitAnalysis(submit_request(receiver.url))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = client.SubmitAnalysis(submit_request(receiver.url), metadata=auth)
        final = {task_pb2.FAILED, task_pb2.SUCCEEDED}
        task = wait_status(client, reply.task_id, final, timeout=60, metadata=auth)
        assert task.error.code == 12004
        channel.close()
        wait_port(api_port, timeout=60)
        url = f"http://127.0.0.1:{api_port}/api/v1/tasks/{reply.task_id}"
        assert httpx.get(url, timeout=10).status_code == 401
        ready = httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert ready.json()["data"]["status"] == "FAILED"
        # The local Redis wants its generated password; its data directory is this user's alone.
        password = (tmp_path / "var" / "redis-password").read_text().strip()
        redis_port = int(re.search(r"redis       127\.0\.0\.1:(\d+)", log_text(tmp_path)).group(1))
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()
        assert redis.Redis(port=redis_port, password=password).ping()
        wait_port(ui_port, timeout=90)
        page = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        # Signed by default: no secret configured, so `up` made one under var/; the reference
        # Standard Webhooks library verifies the callback with it.
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        delivery = receiver.requests[0]
        secret = (tmp_path / "var" / "webhook-secret").read_text().strip()
        assert Webhook(secret).verify(delivery.body, delivery.headers)["taskId"] == reply.task_id
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
        receiver.server.shutdown()
        receiver.server.server_close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output
    assert "redis       127.0.0.1:" in output and f"grpc        127.0.0.1:{grpc_port}" in output
    assert password not in output and key not in output  # printed: where they are, not what
    assert (tmp_path / "var").is_dir()
    for private in ("redis-password", "demo-client-key"):
        assert (tmp_path / "var" / private).stat().st_mode & 0o077 == 0
    assert (tmp_path / "var" / "redis").stat().st_mode & 0o777 == 0o700
    for data_file in (tmp_path / "var" / "redis").rglob("*"):  # the AOF holds images and results
        assert data_file.stat().st_mode & 0o077 == 0, data_file
    secret_file = tmp_path / "var" / "webhook-secret"
    assert f"callbacks   signed with the secret in {secret_file} (created now)" in output
    assert (tmp_path / "var" / "webhook-secret").stat().st_mode & 0o077 == 0
    time.sleep(0.5)
    for port in (grpc_port, api_port, ui_port):
        with pytest.raises(TimeoutError):
            wait_port(port, timeout=1)
