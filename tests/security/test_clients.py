"""Two clinics on one service (CONTRACT.md section 7), over REST and gRPC, against real processes:
redis-server, `dentalai grpc`, a worker making real artifacts (tests.reports.sample_worker),
`dentalai dispatcher`, `dentalai api` and a callback receiver.

Every route answers another client exactly as it answers for a task that does not exist, and
leaves the owner's task as it was; no key answers 401/10003; a taskId is its client's own; the
erase is at once and complete; each client has its own queue share; every access is audited
without patient data."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
import redis

from dentalai.config import Settings
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys, TaskRef
from tests.backbone.helpers import code_of, png_bytes, stub
from tests.conftest import (
    CallbackReceiver,
    Processes,
    RedisServer,
    api_key,
    client_entry,
    free_port,
    make_settings,
    start_callback_receiver,
)
from tests.rest.conftest import assert_error, callbacks_for

KEY_A, KEY_B, KEY_C = api_key("clinic-a"), api_key("clinic-b"), api_key("lab-c")
ARTIFACTS = ["overlay.png", "report.pdf", "report.dcm", "overlay.dcm", "image.dcm"]
PATIENT = {"patientName": "Doe^Jane", "patientId": "PID-778812"}


@dataclass
class Clinics:
    settings: Settings
    url: str
    receiver: CallbackReceiver
    processes: Processes

    def http(self, key: str | None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def grpc(self) -> tuple[grpc.Channel, object]:
        return stub(f"127.0.0.1:{self.settings.grpc.port}")


@pytest.fixture(scope="module")
def clinics(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinics]:
    auth = {
        "clients": [
            client_entry("clinic-a", KEY_A, pdf_metadata_keys=["patientId"]),
            client_entry("clinic-b", KEY_B),
            client_entry("lab-c", KEY_C, queue_share=2, task_types=["ceph"]),
        ]
    }
    settings = make_settings(redis_server.url, auth=auth, callbacks={"retry_delays_s": [0.2]})
    procs = Processes(log_dir=tmp_path_factory.mktemp("clinics"))
    receiver = start_callback_receiver()
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start([], settings, module="tests.reports.sample_worker", wait_line="worker ready", timeout=90)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        procs.start(["api"], settings, wait_port=settings.api.port)
        yield Clinics(settings, f"http://127.0.0.1:{settings.api.port}", receiver, procs)
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        receiver.server.server_close()


def submit(http: httpx.Client, hook: str, task_id: str, task_type: str = "pano", **fields: object) -> None:
    body = {
        "taskType": task_type,
        "imageBase64": base64.b64encode(png_bytes(640, 320)).decode(),
        "callbackUrl": hook,
        "taskId": task_id,
        **fields,
    }
    response = http.post("/api/v1/analyze", json=body)
    assert response.status_code == 202, response.text


def finished(http: httpx.Client, task_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = http.get(f"/api/v1/tasks/{task_id}").json()["data"]
        if task["status"] in ("SUCCEEDED", "FAILED"):
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


REST_ROUTES = [
    ("GET", "/api/v1/tasks/{id}"),
    ("DELETE", "/api/v1/tasks/{id}"),
    ("POST", "/api/v1/tasks/{id}/callback"),
    *[("GET", f"/api/v1/tasks/{{id}}/{name}") for name in ARTIFACTS],
]


def not_found_body(task_id: str) -> dict:
    """What the service answers for a taskId the caller has no task of."""
    return {"code": 10009, "message": f"task {task_id!r} not found", "details": []}


def grpc_calls(client, task_id: str) -> list:  # noqa: ANN001 (generated stub)
    return [
        lambda md: client.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md),
        lambda md: list(client.WatchTask(pb.WatchTaskRequest(task_id=task_id), metadata=md)),
        lambda md: client.CancelTask(pb.CancelTaskRequest(task_id=task_id), metadata=md),
        lambda md: client.ResendCallback(pb.ResendCallbackRequest(task_id=task_id), metadata=md),
        *[
            lambda md, n=name: client.GetArtifact(pb.GetArtifactRequest(task_id=task_id, name=n), metadata=md)
            for name in ARTIFACTS
        ],
    ]


def test_another_clients_task_is_unknown_on_every_route(clinics: Clinics) -> None:
    task_id = f"a-{uuid.uuid4().hex[:8]}"
    with clinics.http(KEY_A) as a, clinics.http(KEY_B) as b, clinics.http(None) as anonymous:
        submit(a, clinics.receiver.url, task_id, metadata=PATIENT)
        owner_view = finished(a, task_id)
        assert owner_view["status"] == "SUCCEEDED" and owner_view["metadata"] == PATIENT
        callbacks_for(clinics.receiver, task_id)
        for method, route in REST_ROUTES:
            path = route.format(id=task_id)
            answer = b.request(method, path)
            assert_error(answer, 404, 10009)
            assert answer.json() == not_found_body(task_id), (method, path)
            assert "PID-778812" not in answer.text and "Doe" not in answer.text
            assert_error(anonymous.request(method, path), 401, 10003)
            assert_error(b.request(method, route.format(id="never-used")), 404, 10009)
        # The owner's task is as it was: not cancelled, not erased, its callback not re-sent.
        time.sleep(0.5)
        again = a.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert again["status"] == "SUCCEEDED" and again["callback"]["state"] == "DELIVERED"
        assert len(callbacks_for(clinics.receiver, task_id)) == 1
        for name in ARTIFACTS:
            assert a.get(f"/api/v1/tasks/{task_id}/{name}").status_code == 200, name

    channel, client = clinics.grpc()
    try:
        for call in grpc_calls(client, task_id):
            assert code_of(lambda c=call: c((("authorization", f"Bearer {KEY_B}"),)))[:2] == (
                grpc.StatusCode.NOT_FOUND, 10009,
            )
            assert code_of(lambda c=call: c(()))[:2] == (grpc.StatusCode.UNAUTHENTICATED, 10003)
        as_a = (("authorization", f"Bearer {KEY_A}"),)
        owner = client.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=as_a)
        assert owner.task.status == task_pb2.SUCCEEDED
    finally:
        channel.close()


def test_a_task_id_belongs_to_its_client(clinics: Clinics) -> None:
    task_id = f"order-{uuid.uuid4().hex[:6]}"
    with clinics.http(KEY_A) as a, clinics.http(KEY_B) as b:
        submit(a, clinics.receiver.url, task_id, metadata={"clinic": "A"})
        # B may use the same id for its own, different task: no 409, nothing learnt about A's.
        submit(b, clinics.receiver.url, task_id, task_type="ceph", metadata={"clinic": "B"})
        mine_a, mine_b = finished(a, task_id), finished(b, task_id)
        assert (mine_a["taskType"], mine_a["metadata"]) == ("pano", {"clinic": "A"})
        assert (mine_b["taskType"], mine_b["metadata"]) == ("ceph", {"clinic": "B"})
        # Idempotency and 409 work within one client.
        submit(a, clinics.receiver.url, task_id, metadata={"clinic": "A"})
        other = a.post(
            "/api/v1/analyze",
            json={"taskType": "ceph", "imageUrl": "http://127.0.0.1:9/x.png",
                  "callbackUrl": clinics.receiver.url, "taskId": task_id},
        )
        assert_error(other, 409, 10004)
        # Each callback carries its own task's metadata.
        bodies = [json.loads(r.body) for r in callbacks_for(clinics.receiver, task_id, count=2)]
        pairs = sorted((c["taskType"], c["metadata"]["clinic"]) for c in bodies)
        assert pairs == [("ceph", "B"), ("pano", "A")]


def test_delete_of_a_finished_task_erases_it_at_once(clinics: Clinics) -> None:
    task_id = f"erase-{uuid.uuid4().hex[:6]}"
    keys = Keys(clinics.settings.key_prefix)
    r = redis.Redis.from_url(clinics.settings.redis_url)
    with clinics.http(KEY_A) as a:
        submit(a, clinics.receiver.url, task_id, metadata=PATIENT)
        finished(a, task_id)
        ref = TaskRef("clinic-a", task_id)
        assert r.exists(keys.task(ref)) and r.exists(keys.artifacts(ref))
        answer = a.delete(f"/api/v1/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"code": 0, "message": "erased", "data": {"taskId": task_id, "erased": True}}
        assert not r.exists(keys.task(ref)) and not r.exists(keys.artifacts(ref))
        assert r.zscore(keys.callback_schedule, str(ref)) is None
        for method, route in REST_ROUTES:
            assert a.request(method, route.format(id=task_id)).json() == not_found_body(task_id)


def test_queue_share_and_task_types_are_per_client(clinics: Clinics, processes: Processes) -> None:
    # The same clients on a service with no worker, so that submitted tasks stay open.
    settings = clinics.settings.with_overrides(key_prefix=clinics.settings.key_prefix + "idle:")
    settings = settings.with_overrides(grpc={"port": free_port()}, api={"port": free_port()})
    settings = settings.with_overrides(api={"grpc_target": f"127.0.0.1:{settings.grpc.port}"})
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    processes.start(["api"], settings, wait_port=settings.api.port)
    url = f"http://127.0.0.1:{settings.api.port}"
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY_C}"}, timeout=30) as c:
        hook = clinics.receiver.url
        pano = {"taskType": "pano", "imageUrl": "http://127.0.0.1:9/x.png", "callbackUrl": hook}
        assert_error(c.post("/api/v1/analyze", json=pano), 400, 10002)  # lab-c may send ceph only
        ceph = {**pano, "taskType": "ceph"}
        assert [c.post("/api/v1/analyze", json=ceph).status_code for _ in range(2)] == [202, 202]
        full = c.post("/api/v1/analyze", json=ceph)
        assert_error(full, 429, 10007)
        assert int(full.headers["retry-after"]) > 0
        assert "this client's share" in full.json()["message"]
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY_A}"}, timeout=30) as a:
        assert a.post("/api/v1/analyze", json=ceph).status_code == 202  # A is not held by C's full share
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    try:
        request = pb.SubmitAnalysisRequest(task_type="ceph", image_url="http://127.0.0.1:9/x.png",
                                           callback_url=clinics.receiver.url)
        status, code, _ = code_of(
            lambda: client.SubmitAnalysis(request, metadata=(("authorization", f"Bearer {KEY_C}"),))
        )
        assert (status, code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, 10007)
    finally:
        channel.close()


def test_every_access_is_audited_without_patient_data(clinics: Clinics) -> None:
    task_id = f"audit-{uuid.uuid4().hex[:6]}"
    with clinics.http(KEY_A) as a, clinics.http(KEY_B) as b:
        submit(a, clinics.receiver.url, task_id, metadata=PATIENT)
        finished(a, task_id)
        b.get(f"/api/v1/tasks/{task_id}")
        a.get(f"/api/v1/tasks/{task_id}/report.pdf")
    grpc_log = clinics.processes.procs[0].log_path  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in grpc_log.read_text().splitlines() if x.startswith("{")]
    audit = [x for x in lines if x.get("logger") == "dentalai.audit" and x.get("taskId") == task_id]
    seen = {(x["clientId"], x["route"], x["outcome"]) for x in audit}
    assert ("clinic-a", "SubmitAnalysis", "ok") in seen
    assert ("clinic-b", "GetTask", "10009") in seen
    assert ("clinic-a", "GetArtifact", "ok") in seen
    text = grpc_log.read_text()
    assert "PID-778812" not in text and "Doe^Jane" not in text
