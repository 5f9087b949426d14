"""`dentalai up` starts redis, the gRPC server, a worker, the dispatcher, the REST bridge and the UI,
serves a task to a final state through REST, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from dentalai.v1 import task_pb2
from tests.backbone.helpers import stub, submit_request, wait_status
from tests.conftest import REPO, free_port, start_callback_receiver, wait_port

pytestmark = pytest.mark.slow


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
        channel, client = stub(f"127.0.0.1:{grpc_port}")
        reply = client.SubmitAnalysis(submit_request(receiver.url))
        task = wait_status(client, reply.task_id, {task_pb2.FAILED, task_pb2.SUCCEEDED}, timeout=60)
        assert task.error.code == 12004
        channel.close()
        wait_port(api_port, timeout=60)
        ready = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/tasks/{reply.task_id}", timeout=10)
        assert ready.json()["data"]["status"] == "FAILED"
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
    assert "redis       redis://127.0.0.1:" in output and f"grpc        127.0.0.1:{grpc_port}" in output
    assert (tmp_path / "var").is_dir()
    secret_file = tmp_path / "var" / "webhook-secret"
    assert f"callbacks   signed with the secret in {secret_file} (created now)" in output
    assert (tmp_path / "var" / "webhook-secret").stat().st_mode & 0o077 == 0
    time.sleep(0.5)
    for port in (grpc_port, api_port, ui_port):
        with pytest.raises(TimeoutError):
            wait_port(port, timeout=1)
