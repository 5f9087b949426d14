"""SubmitAnalysis rules (CONTRACT section 1) and the API-side codes, on a real server and redis."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import redis
from google.protobuf import struct_pb2

from dentalai.config import Settings
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys
from tests.backbone.helpers import code_of, stub, submit_request
from tests.conftest import (
    Processes,
    RedisServer,
    api_key,
    client_entry,
    make_settings,
    open_ref,
    start_redis,
)

HOOK = "http://127.0.0.1:9/hook"  # loopback is allow-listed in test settings
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def api(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, object]]:
    settings = make_settings(redis_server.url, limits={"max_image_bytes": 100_000, "max_metadata_bytes": 64})
    procs = Processes(log_dir=tmp_path_factory.mktemp("logs"))
    procs.start(["grpc"], settings, wait_port=settings.grpc.port)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    yield settings, client
    channel.close()
    procs.stop_all()


def _big_metadata() -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update({"note": "x" * 100})
    return s


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"task_type": ""}, 10001, "taskType"),
        ({"task_type": "bitewing"}, 10002, "taskType"),
        ({"image_data": None}, 10001, "imageUrl"),
        ({"image_data": b""}, 10001, "imageBase64"),
        ({"image_data": b"x" * 100_001}, 10001, "imageBase64"),
        ({"image_data": None, "image_url": "ftp://example.com/a.png"}, 10001, "imageUrl"),
        ({"image_data": None, "image_url": "https://example.com/" + "a" * 2048}, 10001, "imageUrl"),
        ({"image_data": None, "image_url": "http:///nohost"}, 10001, "imageUrl"),
        ({"image_data": None, "image_url": "http://10.0.0.7/a.png"}, 10001, "imageUrl"),
        ({"image_data": None, "image_url": "http://169.254.169.254/latest"}, 10001, "imageUrl"),
        ({"image_data": None, "image_url": "http://[fd00::1]/a.png"}, 10001, "imageUrl"),
        ({"callback_url": ""}, 10001, "callbackUrl"),
        ({"callback_url": "not a url"}, 10001, "callbackUrl"),
        ({"callback_url": "http://192.168.1.20/hook"}, 10001, "callbackUrl"),
        ({"callback_url": "http://100.64.0.1/hook"}, 10001, "callbackUrl"),
        ({"callback_url": "http://0.0.0.0/hook"}, 10001, "callbackUrl"),
        ({"task_id": "has space"}, 10001, "taskId"),
        ({"task_id": "x" * 65}, 10001, "taskId"),
        ({"metadata": _big_metadata()}, 10001, "metadata"),
        ({"options": task_pb2.AnalysisOptions(pixel_spacing_mm=0)}, 10001, "options.pixelSpacingMm"),
        ({"options": task_pb2.AnalysisOptions(pixel_spacing_mm=-1)}, 10001, "options.pixelSpacingMm"),
        ({"options": task_pb2.AnalysisOptions(tooth_numbering=7)}, 10001, "options.toothNumbering"),
    ],
)
def test_invalid_submissions_get_their_code_and_field(api, fields, code, field) -> None:
    _settings, client = api
    request = submit_request(HOOK, **{k: v for k, v in fields.items() if v is not None})
    if "image_data" in fields and fields["image_data"] is None:
        request.ClearField("image_data")
    status, got, details = code_of(lambda: client.SubmitAnalysis(request))
    assert (status, got) == (INVALID, code)
    assert details and details[0][0] == field


def test_valid_submission_with_options_is_queued(api) -> None:
    _settings, client = api
    request = submit_request(
        HOOK, task_id="ok-1", options=task_pb2.AnalysisOptions(pixel_spacing_mm=0.1, tooth_numbering=2)
    )
    assert client.SubmitAnalysis(request).status == task_pb2.QUEUED
    task = client.GetTask(pb.GetTaskRequest(task_id="ok-1")).task
    assert task.options.tooth_numbering == 2 and task.callback.state == task_pb2.NOT_DUE


def test_cancel_queued_then_erase_then_10009(api) -> None:
    settings, client = api
    client.SubmitAnalysis(submit_request(HOOK, task_id="cancel-me"))
    reply = client.CancelTask(pb.CancelTaskRequest(task_id="cancel-me"))
    assert reply.task.status == task_pb2.CANCELLED and not reply.erased
    assert client.GetTask(pb.GetTaskRequest(task_id="cancel-me")).task.status == task_pb2.CANCELLED
    status, code, _ = code_of(lambda: client.ResendCallback(pb.ResendCallbackRequest(task_id="cancel-me")))
    assert code == 10010  # only SUCCEEDED / FAILED tasks have a callback to resend
    r = redis.Redis.from_url(settings.redis_url)
    assert r.zscore(Keys(settings.key_prefix).callback_schedule, str(open_ref("cancel-me"))) is None
    # A final task (CANCELLED too) is erased by the next DELETE, and is unknown from then on.
    reply = client.CancelTask(pb.CancelTaskRequest(task_id="cancel-me"))
    assert reply.erased and reply.task.status == task_pb2.CANCELLED
    assert not r.exists(Keys(settings.key_prefix).task(open_ref("cancel-me")))
    for call in (
        lambda: client.GetTask(pb.GetTaskRequest(task_id="cancel-me")),
        lambda: client.CancelTask(pb.CancelTaskRequest(task_id="cancel-me")),
        lambda: client.CancelTask(pb.CancelTaskRequest(task_id="never")),
    ):
        assert code_of(call)[:2] == (grpc.StatusCode.NOT_FOUND, 10009)


def test_queue_cap_answers_10007(redis_server: RedisServer, processes: Processes) -> None:
    settings = make_settings(redis_server.url, limits={"queue_max_length": 2})
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    try:
        for i in range(2):
            client.SubmitAnalysis(submit_request(HOOK, task_id=f"q{i}"))
        status, code, _ = code_of(lambda: client.SubmitAnalysis(submit_request(HOOK, task_id="q2")))
        assert (status, code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, 10007)
        status, code, _ = code_of(lambda: client.GetTask(pb.GetTaskRequest(task_id="q2")))
        assert code == 10009  # nothing was stored
    finally:
        channel.close()


def test_client_keys_when_configured(redis_server: RedisServer, processes: Processes) -> None:
    keys = [api_key("old-key"), api_key("new-key")]
    settings = make_settings(redis_server.url, auth={"clients": [client_entry("clinic", *keys)]})
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    try:
        request = submit_request(HOOK)
        status, code, _ = code_of(lambda: client.SubmitAnalysis(request))
        assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, 10003)
        bad = (("authorization", "Bearer wrong"),)
        assert code_of(lambda: client.SubmitAnalysis(request, metadata=bad))[1] == 10003
        for token in keys:
            ok = client.SubmitAnalysis(request, metadata=(("authorization", f"Bearer {token}"),))
            assert ok.status == task_pb2.QUEUED
        watch = client.WatchTask(pb.WatchTaskRequest(task_id="x"))
        assert code_of(lambda: list(watch))[1] == 10003
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no token
    finally:
        channel.close()


def test_redis_down_gives_10008_then_recovers_without_restart(tmp_path, processes: Processes) -> None:
    own = start_redis(tmp_path / "redis")
    settings = make_settings(own.url)
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    try:
        assert client.SubmitAnalysis(submit_request(HOOK)).status == task_pb2.QUEUED
        own.stop()
        status, code, _ = code_of(lambda: client.SubmitAnalysis(submit_request(HOOK), timeout=10))
        assert (status, code) == (grpc.StatusCode.UNAVAILABLE, 10008)
        assert code_of(lambda: client.GetTask(pb.GetTaskRequest(task_id="a"), timeout=10))[1] == 10008
        state = client.GetServiceStatus(pb.GetServiceStatusRequest(), timeout=10)
        assert not state.store_reachable and not state.ready
        own.start()
        assert client.SubmitAnalysis(submit_request(HOOK), timeout=10).status == task_pb2.QUEUED
        assert client.GetServiceStatus(pb.GetServiceStatusRequest()).store_reachable
    finally:
        channel.close()
        own.stop()


def _meta(value: int) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update({"a": value})
    return s


def test_submission_hash_covers_every_field_and_the_image() -> None:
    from grpc_server.submission import submission_hash

    def request(**change: object) -> pb.SubmitAnalysisRequest:
        return submit_request(HOOK, **{"task_id": "t1", "metadata": _meta(1), **change})

    base = request()
    assert submission_hash(base, base.image_data) == submission_hash(request(), request().image_data)
    for change in ({"image_data": b"other"}, {"metadata": _meta(2)}, {"callback_url": "https://x.example/cb"},
                   {"options": task_pb2.AnalysisOptions(pixel_spacing_mm=0.2)},
                   {"image_data": None, "image_url": "https://x.example/i.png"}):  # fmt: skip
        other = request(**change)
        image = other.image_data if other.WhichOneof("image") == "image_data" else None
        assert submission_hash(other, image) != submission_hash(base, base.image_data), change


def test_resubmission_of_a_task_stored_with_the_old_hash_is_not_a_conflict(api) -> None:
    import hashlib

    settings, client = api
    first = submit_request(HOOK, task_id="legacy-hash-1")
    client.SubmitAnalysis(first)
    # As a task stored before the hash was versioned: sha256 of the whole serialized request.
    old = hashlib.sha256(first.SerializeToString(deterministic=True)).hexdigest()
    r = redis.Redis.from_url(settings.redis_url)
    r.hset(Keys(settings.key_prefix).task("legacy-hash-1"), "request_hash", old)
    assert client.SubmitAnalysis(first).task_id == "legacy-hash-1"
    other = submit_request(HOOK, task_id="legacy-hash-1", callback_url="https://x.example/cb")
    status, code, _ = code_of(lambda: client.SubmitAnalysis(other))
    assert code == 10004
