"""Worker faults with real processes: SIGKILL mid-task and takeover, delivery cap and dead letter,
missing model 12004, time limit 12002, graceful SIGTERM."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from dentalai.contract import FINAL_STATUSES
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys
from tests.backbone.helpers import stub, submit_request, wait_status
from tests.conftest import Processes, RedisServer, make_settings, open_ref, queue_drained

pytestmark = pytest.mark.slow
HOOK = "http://127.0.0.1:9/hook"
FINAL = FINAL_STATUSES  # the contract's set (dentalai.contract)
WORKER = "tests.backbone.echo_worker"


def _statuses_seen(client, task_id: str) -> list[int]:
    return [m.task.status for m in client.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=60)]


def test_sigkill_mid_task_is_taken_over_with_one_final_state(
    redis_server: RedisServer, processes: Processes, tmp_path
) -> None:
    settings = make_settings(
        redis_server.url,
        tasks={"visibility_timeout_s": 1.5, "task_timeout_s": 30},
        worker={"models_dir": str(tmp_path), "claim_interval_s": 0.3},
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    slow = processes.start(
        [], settings, module=WORKER, wait_line="worker ready", extra_env={"ECHO_TEST_SLEEP_S": "60"}
    )
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    reply = client.SubmitAnalysis(submit_request(HOOK))
    wait_status(client, reply.task_id, {task_pb2.RUNNING})
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    processes.start([], settings, module=WORKER, wait_line="worker ready")
    statuses = _statuses_seen(client, reply.task_id)
    task = client.GetTask(pb.GetTaskRequest(task_id=reply.task_id)).task
    assert task.status == task_pb2.SUCCEEDED and task.deliveries == 2
    assert [s for s in statuses if s in FINAL] == [task_pb2.SUCCEEDED]
    r = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    assert queue_drained(r, keys)
    assert r.zcard(keys.callback_schedule) == 1  # one callback, not two
    channel.close()


def test_delivery_cap_fails_12005_and_dead_letters(
    redis_server: RedisServer, processes: Processes, tmp_path
) -> None:
    settings = make_settings(
        redis_server.url,
        tasks={"visibility_timeout_s": 1.0, "max_deliveries": 1},
        worker={"models_dir": str(tmp_path), "claim_interval_s": 0.3},
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    slow = processes.start(
        [], settings, module=WORKER, wait_line="worker ready", extra_env={"ECHO_TEST_SLEEP_S": "60"}
    )
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    reply = client.SubmitAnalysis(submit_request(HOOK))
    wait_status(client, reply.task_id, {task_pb2.RUNNING})
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    processes.start([], settings, module=WORKER, wait_line="worker ready")
    task = wait_status(client, reply.task_id, FINAL)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 12005)
    assert task.callback.state == task_pb2.PENDING
    r = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    dead = r.xrange(keys.dead_letter)
    assert [e[1][b"task"].decode() for e in dead] == [str(open_ref(reply.task_id))]
    assert client.GetServiceStatus(pb.GetServiceStatusRequest()).dead_letter_depth == 1
    channel.close()


def test_missing_model_12004_and_time_limit_12002(
    redis_server: RedisServer, processes: Processes, tmp_path
) -> None:
    # Only ceph is the echo pipeline; pano loads the real pipeline from an empty models_dir.
    settings = make_settings(
        redis_server.url, tasks={"task_timeout_s": 1.0}, worker={"models_dir": str(tmp_path)}
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    processes.start(
        [],
        settings,
        module=WORKER,
        wait_line="worker ready",
        extra_env={"ECHO_TEST_TYPES": "ceph", "ECHO_TEST_SLEEP_S": "3"},
    )
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    pano = client.SubmitAnalysis(submit_request(HOOK, task_type="pano"))
    ceph = client.SubmitAnalysis(submit_request(HOOK, task_type="ceph"))
    task = wait_status(client, pano.task_id, FINAL)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 12004)
    assert not task.HasField("pano")  # never a fake result
    task = wait_status(client, ceph.task_id, FINAL)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 12002)
    status = client.GetServiceStatus(pb.GetServiceStatusRequest())
    assert [list(w.task_types) for w in status.workers] == [["ceph"]]
    channel.close()


def test_sigterm_finishes_the_current_task(redis_server: RedisServer, processes: Processes, tmp_path) -> None:
    settings = make_settings(redis_server.url, worker={"models_dir": str(tmp_path)})
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    worker = processes.start(
        [], settings, module=WORKER, wait_line="worker ready", extra_env={"ECHO_TEST_SLEEP_S": "1.5"}
    )
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    reply = client.SubmitAnalysis(submit_request(HOOK))
    wait_status(client, reply.task_id, {task_pb2.RUNNING})
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    task = client.GetTask(pb.GetTaskRequest(task_id=reply.task_id)).task
    assert task.status == task_pb2.SUCCEEDED
    time.sleep(0)
    assert not client.GetServiceStatus(pb.GetServiceStatusRequest()).workers  # heartbeat removed
    channel.close()


def test_worker_survives_a_redis_restart(processes: Processes, tmp_path) -> None:
    from tests.conftest import start_redis

    own = start_redis(tmp_path / "redis", appendonly=True)
    try:
        settings = make_settings(own.url, worker={"models_dir": str(tmp_path)})
        processes.start(["grpc"], settings, wait_port=settings.grpc.port)
        processes.start([], settings, module=WORKER, wait_line="worker ready")
        channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
        wait_status(client, client.SubmitAnalysis(submit_request(HOOK)).task_id, FINAL)
        own.stop()
        time.sleep(1.5)  # the worker sees the outage
        own.start()
        task = wait_status(client, client.SubmitAnalysis(submit_request(HOOK)).task_id, FINAL, timeout=30)
        assert task.status == task_pb2.SUCCEEDED
        channel.close()
    finally:
        own.stop()


def test_a_live_worker_keeps_a_task_longer_than_the_visibility_timeout(
    redis_server: RedisServer, processes: Processes, tmp_path
) -> None:
    settings = make_settings(
        redis_server.url,
        tasks={"visibility_timeout_s": 0.6},
        worker={"models_dir": str(tmp_path), "claim_interval_s": 0.2},
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    env = {"ECHO_TEST_SLEEP_S": "2.5"}
    for _ in range(2):
        processes.start([], settings, module=WORKER, wait_line="worker ready", extra_env=env)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    task = wait_status(client, client.SubmitAnalysis(submit_request(HOOK)).task_id, FINAL)
    assert task.status == task_pb2.SUCCEEDED and task.deliveries == 1  # never taken over
    channel.close()
