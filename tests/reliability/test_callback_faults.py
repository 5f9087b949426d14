"""Callback delivery against misbehaving receivers, and a dispatcher killed mid-delivery, through
real processes (gRPC server, echo worker, `dentalai dispatcher`) and only the contract (section 4):
black-box, so they hold for any dispatcher implementation. The retry schedule itself and signatures
are the dispatcher's own tests."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dentalai.config import Settings
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import task_pb2
from tests.backbone.helpers import stub, submit_request, wait_status
from tests.conftest import CallbackReceiver, Processes, RedisServer, make_settings

pytestmark = pytest.mark.slow
FINAL = {task_pb2.SUCCEEDED, task_pb2.FAILED}


@dataclass
class Stack:
    settings: Settings
    client: pb_grpc.AnalysisServiceStub
    receiver: CallbackReceiver
    processes: Processes

    def finished_task(self, path: str = "/hook") -> str:
        url = self.receiver.url_for(path)
        task_id = self.client.SubmitAnalysis(submit_request(url)).task_id
        wait_status(self.client, task_id, FINAL)
        return task_id

    def callback(self, task_id: str) -> task_pb2.CallbackInfo:
        return self.client.GetTask(pb.GetTaskRequest(task_id=task_id)).task.callback

    def wait_callback(self, task_id: str, states: set[int], timeout: float = 20) -> task_pb2.CallbackInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.callback(task_id)
            if info.state in states:
                return info
            time.sleep(0.05)
        raise TimeoutError(f"callback still {task_pb2.CallbackState.Name(info.state)}")


@pytest.fixture
def stack(
    redis_server: RedisServer, processes: Processes, callback_receiver: CallbackReceiver, tmp_path: Path
) -> Iterator[Stack]:
    settings = make_settings(
        redis_server.url,
        worker={"models_dir": str(tmp_path)},
        callbacks={"retry_delays_s": [0.3, 0.3, 0.3], "jitter": 0.0, "timeout_s": 1.0, "lease_s": 2.0},
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    processes.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready")
    processes.start(["dispatcher"], settings)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    yield Stack(settings, client, callback_receiver, processes)
    channel.close()


def _hooks(receiver: CallbackReceiver, path: str = "/hook") -> list:
    return [r for r in receiver.requests if r.path == path]


def test_500_then_success_is_delivered_with_one_webhook_id(stack: Stack) -> None:
    stack.receiver.respond(500, 503)
    task_id = stack.finished_task()
    info = stack.wait_callback(task_id, {task_pb2.DELIVERED})
    hooks = _hooks(stack.receiver)
    assert len(hooks) == 3 and info.attempts == 3
    assert len({h.headers["webhook-id"] for h in hooks}) == 1
    assert all(h.json()["taskId"] == task_id for h in hooks)


def test_timeout_is_retried(stack: Stack) -> None:
    stack.receiver.respond(200, delay_s=2.5)  # longer than callbacks.timeout_s
    task_id = stack.finished_task()
    info = stack.wait_callback(task_id, {task_pb2.DELIVERED})
    assert info.attempts >= 2 and len(_hooks(stack.receiver)) >= 2


def test_429_retry_after_is_honoured(stack: Stack) -> None:
    stack.receiver.respond(429, headers={"retry-after": "2"})
    task_id = stack.finished_task()
    stack.wait_callback(task_id, {task_pb2.DELIVERED})
    first, second = _hooks(stack.receiver)[:2]
    assert second.at - first.at >= 1.8  # Retry-After (2 s), not the 0.3 s schedule


@pytest.mark.parametrize("status", [410, 400, 404])
def test_non_retryable_status_fails_delivery_at_once(stack: Stack, status: int) -> None:
    stack.receiver.respond(status)
    task_id = stack.finished_task()
    info = stack.wait_callback(task_id, {task_pb2.EXHAUSTED})
    time.sleep(1.0)  # longer than the whole retry schedule: nothing more arrives
    assert len(_hooks(stack.receiver)) == 1 and info.last_status_code == status


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_not_followed(stack: Stack, status: int) -> None:
    # Contract: redirects are not followed, and a status that is not 2xx or retryable fails delivery.
    stack.receiver.respond(status, headers={"location": stack.receiver.url_for("/elsewhere")})
    task_id = stack.finished_task()
    info = stack.wait_callback(task_id, {task_pb2.EXHAUSTED})
    time.sleep(1.0)
    assert not _hooks(stack.receiver, "/elsewhere"), "the redirect was followed"
    assert len(_hooks(stack.receiver)) == 1 and info.last_status_code == status


def test_dispatcher_killed_mid_delivery_delivers_after_restart(stack: Stack) -> None:
    stack.receiver.respond(200, delay_s=0.8)  # the first attempt hangs while the dispatcher dies
    task_id = stack.finished_task()
    stack.receiver.wait_for(1)
    dispatcher = stack.processes.procs[2]
    dispatcher.send_signal(signal.SIGKILL)
    dispatcher.wait()
    stack.processes.start(["dispatcher"], stack.settings)
    info = stack.wait_callback(task_id, {task_pb2.DELIVERED}, timeout=30)  # after the lease runs out
    hooks = _hooks(stack.receiver)
    assert info.state == task_pb2.DELIVERED and len(hooks) >= 2  # at least once
    assert len({h.headers["webhook-id"] for h in hooks}) == 1  # the same id: receivers can dedupe
