"""gRPC server and an echo worker as real processes on a real redis-server: the asynchronous path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf import struct_pb2

from dentalai.config import OPEN_CLIENT_ID, Settings
from dentalai.contract import FINAL_STATUSES
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys
from tests.backbone.helpers import code_of, png_bytes, stub, submit_request, wait_status
from tests.conftest import (
    CallbackReceiver,
    Processes,
    RedisServer,
    make_settings,
    open_ref,
    start_callback_receiver,
)

pytestmark = pytest.mark.slow
FINAL = FINAL_STATUSES  # the contract's set (dentalai.contract)


@dataclass
class Stack:
    settings: Settings
    client: pb_grpc.AnalysisServiceStub
    receiver: CallbackReceiver
    redis: redis.Redis
    keys: Keys
    logs: list[Path]


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The echo worker serves pano and ceph; models_dir is empty so nothing real is loaded.
    settings = make_settings(redis_server.url, worker={"models_dir": str(tmp_path_factory.mktemp("models"))})
    procs = Processes(log_dir=tmp_path_factory.mktemp("logs"))
    receiver = start_callback_receiver()
    try:
        server = procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        worker = procs.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready")
        channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
        store = redis.Redis.from_url(settings.redis_url)
        logs = [server.log_path, worker.log_path]  # type: ignore[attr-defined]
        yield Stack(settings, client, receiver, store, Keys(settings.key_prefix), logs)
        channel.close()
    finally:
        procs.stop_all()
        receiver.server.shutdown()


def test_submit_then_get_reaches_succeeded_with_callback_scheduled(stack: Stack) -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"patient": "p-1"})
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, metadata=metadata))
    assert reply.status == task_pb2.QUEUED and reply.task_id
    task = wait_status(stack.client, reply.task_id, FINAL)
    assert task.status == task_pb2.SUCCEEDED, task.error
    assert (task.pano.image.width, task.pano.image.height) == (320, 300)
    assert task.model.name == "echo-test" and task.deliveries == 1
    assert task.callback.state == task_pb2.PENDING and task.callback.url == stack.receiver.url
    assert task.metadata["patient"] == "p-1"
    assert task.timing.total_ms >= task.timing.processing_ms
    assert stack.redis.zscore(stack.keys.callback_schedule, str(open_ref(reply.task_id))) is not None
    assert stack.redis.hget(stack.keys.task(open_ref(reply.task_id)), "webhook_id")
    assert stack.redis.hget(stack.keys.task(open_ref(reply.task_id)), "image") is None  # dropped when final
    assert 0 < stack.redis.ttl(stack.keys.task(open_ref(reply.task_id))) <= stack.settings.tasks.result_ttl_s


def test_watch_streams_each_status_until_final(stack: Stack) -> None:
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, task_type="ceph"))
    statuses = [m.task.status for m in stack.client.WatchTask(pb.WatchTaskRequest(task_id=reply.task_id))]
    assert statuses[-1] == task_pb2.SUCCEEDED
    assert len(statuses) == len(set(statuses))  # one message per change
    assert set(statuses) <= {task_pb2.QUEUED, task_pb2.RUNNING, task_pb2.SUCCEEDED}


def test_analyze_waits_for_the_result(stack: Stack) -> None:
    request = pb.AnalyzeRequest(request=submit_request(stack.receiver.url, task_type="ceph"))
    task = stack.client.Analyze(request, timeout=30).task
    assert task.status == task_pb2.SUCCEEDED and task.ceph.image.width == 320


def test_undecodable_image_fails_11002_asynchronously(stack: Stack) -> None:
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, image_data=b"not an image at all"))
    assert reply.status == task_pb2.QUEUED
    task = wait_status(stack.client, reply.task_id, FINAL)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 11002)
    assert task.callback.state == task_pb2.PENDING


def test_unreachable_image_url_fails_11001_asynchronously(stack: Stack) -> None:
    # Loopback is allow-listed in tests; the receiver answers GET with 501.
    url = stack.receiver.url.replace("/hook", "/image.png")
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, image_data=None, image_url=url))
    task = wait_status(stack.client, reply.task_id, FINAL)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 11001), task.error.message


def test_small_image_fails_the_input_check(stack: Stack) -> None:
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, image_data=png_bytes(100, 80)))
    task = wait_status(stack.client, reply.task_id, FINAL)
    assert task.error.code == 11003


def test_idempotent_resubmission_and_conflict(stack: Stack) -> None:
    request = submit_request(stack.receiver.url, task_id="same-id.1")
    first = stack.client.SubmitAnalysis(request)
    wait_status(stack.client, "same-id.1", FINAL)
    depth = stack.redis.xlen(stack.keys.queue(OPEN_CLIENT_ID))
    again = stack.client.SubmitAnalysis(request)
    assert again.task_id == first.task_id and again.status == task_pb2.SUCCEEDED  # current state
    assert stack.redis.xlen(stack.keys.queue(OPEN_CLIENT_ID)) == depth  # nothing queued
    other = submit_request(stack.receiver.url, task_id="same-id.1", task_type="ceph")
    status, code, _ = code_of(lambda: stack.client.SubmitAnalysis(other))
    assert (status, code) == (grpc.StatusCode.ALREADY_EXISTS, 10004)


def test_resend_rearms_a_final_task_and_refuses_others(stack: Stack) -> None:
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url))
    wait_status(stack.client, reply.task_id, FINAL)
    stack.redis.zrem(stack.keys.callback_schedule, str(open_ref(reply.task_id)))
    webhook_id = stack.redis.hget(stack.keys.task(open_ref(reply.task_id)), "webhook_id")
    task = stack.client.ResendCallback(pb.ResendCallbackRequest(task_id=reply.task_id)).task
    assert task.callback.state == task_pb2.PENDING and task.callback.attempts == 0
    assert stack.redis.zscore(stack.keys.callback_schedule, str(open_ref(reply.task_id))) is not None
    assert stack.redis.hget(stack.keys.task(open_ref(reply.task_id)), "webhook_id") == webhook_id
    status, code, _ = code_of(lambda: stack.client.ResendCallback(pb.ResendCallbackRequest(task_id="nope")))
    assert (status, code) == (grpc.StatusCode.NOT_FOUND, 10009)


def test_service_status_reports_a_ready_worker(stack: Stack) -> None:
    status = stack.client.GetServiceStatus(pb.GetServiceStatusRequest())
    assert status.store_reachable
    assert [w.task_types for w in status.workers] == [["ceph", "pano"]]
    assert status.ready  # the echo models count as loaded
    assert status.tasks_by_status["SUCCEEDED"] >= 1
    assert status.queue_depth == 0


def test_heartbeat_is_the_worker_info_message(stack: Stack) -> None:
    # One schema: the key holds the WorkerInfo that GetServiceStatus answers, not a JSON dict.
    keys = list(stack.redis.scan_iter(match=stack.keys.worker_pattern))
    assert len(keys) == 1
    beat = pb.WorkerInfo.FromString(stack.redis.get(keys[0]))
    status = stack.client.GetServiceStatus(pb.GetServiceStatusRequest())
    assert beat.models and beat.last_seen.seconds > 0
    # A heartbeat may land between the two reads (a loaded machine): all but its time must agree.
    (worker,) = status.workers
    assert abs(worker.last_seen.seconds - beat.last_seen.seconds) <= 30
    worker.ClearField("last_seen")
    beat.ClearField("last_seen")
    assert worker == beat


def test_get_unknown_task_is_10009(stack: Stack) -> None:
    status, code, _ = code_of(lambda: stack.client.GetTask(pb.GetTaskRequest(task_id="unknown")))
    assert (status, code) == (grpc.StatusCode.NOT_FOUND, 10009)
    status, code, _ = code_of(lambda: list(stack.client.WatchTask(pb.WatchTaskRequest(task_id="unknown"))))
    assert (status, code) == (grpc.StatusCode.NOT_FOUND, 10009)


def test_health_and_reflection_are_served(stack: Stack) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{stack.settings.grpc.port}")
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in next(answers).list_services_response.service}
    assert "dentalai.v1.AnalysisService" in names
    channel.close()
    time.sleep(0)


def test_image_url_is_fetched_and_analysed(stack: Stack) -> None:
    stack.receiver.files["/pano.png"] = png_bytes(400, 300)
    url = stack.receiver.url_for("/pano.png")
    request = submit_request(stack.receiver.url, image_data=None, image_url=url)
    task = wait_status(stack.client, stack.client.SubmitAnalysis(request).task_id, FINAL)
    assert task.status == task_pb2.SUCCEEDED and task.pano.image.width == 400


def test_logs_are_json_lines_with_task_id_and_no_metadata_values(stack: Stack) -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"patientName": "SECRET-NAME"})
    reply = stack.client.SubmitAnalysis(submit_request(stack.receiver.url, metadata=metadata))
    wait_status(stack.client, reply.task_id, FINAL)
    time.sleep(0.2)
    lines = [line for path in stack.logs for line in path.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r.get("taskId") == reply.task_id]
    assert {r["msg"] for r in mine} >= {"task queued", "task finished"}
    assert not any("SECRET-NAME" in line for line in lines)
