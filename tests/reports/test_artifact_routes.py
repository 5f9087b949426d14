"""The artifact routes end to end: real redis-server, `dentalai grpc`, a real worker (sample
pipelines at the real image sizes), `dentalai dispatcher`, `dentalai api` and a callback receiver.
REST and gRPC serve the same files; the callback carries the routes when options.artifacts asks."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator

import cv2
import grpc
import httpx
import pydicom
import pytest
from PIL import Image

from dentalai.config import Settings
from dentalai.v1 import analysis_service_pb2 as pb
from tests.backbone.helpers import code_of, stub
from tests.conftest import Processes, RedisServer, make_settings, start_callback_receiver
from tests.reports import samples
from tests.rest.conftest import assert_error, bridge_to, callbacks_for, grpc_for

ALL = ["overlay.png", "report.pdf", "report.dcm", "overlay.dcm", "image.dcm"]
MEDIA = {".png": "image/png", ".pdf": "application/pdf", ".dcm": "application/dicom"}


def png_b64(pixels) -> str:
    ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    settings = make_settings(redis_server.url, callbacks={"retry_delays_s": [0.2]}, key_prefix="art:")
    procs = Processes(log_dir=tmp_path_factory.mktemp("artifacts"))
    receiver = start_callback_receiver()
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start([], settings, module="tests.reports.sample_worker", wait_line="worker ready", timeout=90)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        procs.start(["api"], settings, wait_port=settings.api.port)
        url = f"http://127.0.0.1:{settings.api.port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            yield settings, http, receiver
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        receiver.server.server_close()


def submit(http: httpx.Client, hook: str, task_type: str, **fields: object) -> str:
    task_id = f"{task_type}-{uuid.uuid4().hex[:8]}"
    pixels = samples.ceph_image() if task_type == "ceph" else samples.pano_image()
    body = {"taskType": task_type, "imageBase64": png_b64(pixels), "callbackUrl": hook, "taskId": task_id}
    body.update(fields)
    response = http.post("/api/v1/analyze", json=body)
    assert response.status_code == 202, response.text
    return task_id


def test_ceph_artifacts_over_rest_grpc_and_in_the_callback(stack) -> None:
    settings, http, receiver = stack
    task_id = submit(
        http,
        receiver.url,
        "ceph",
        metadata={"patientRef": "A-17"},
        options={"pixelSpacingMm": 0.1, "artifacts": ["png", "pdf", "dcm"]},
    )
    (callback,) = callbacks_for(receiver, task_id, timeout=120)
    body = json.loads(callback.body)
    assert body["artifacts"] == {name: f"/api/v1/tasks/{task_id}/{name}" for name in ALL}
    task = http.get(f"/api/v1/tasks/{task_id}").json()["data"]
    assert sorted(task["artifacts"]["ready"]) == sorted(ALL)
    assert "error" not in task["artifacts"]  # set only when they could not be made
    files = {}
    for name, route in body["artifacts"].items():
        response = http.get(route)  # the routes are relative to the API's base URL
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == MEDIA[name[name.rindex(".") :]]
        files[name] = response.content
    assert Image.open(io.BytesIO(files["overlay.png"])).size == (1290, 1600)
    assert files["report.pdf"].startswith(b"%PDF")
    sr = pydicom.dcmread(io.BytesIO(files["report.dcm"]))
    assert sr.StudyInstanceUID == pydicom.dcmread(io.BytesIO(files["image.dcm"])).StudyInstanceUID
    # De-identified by default: the study carries a pseudonym, never the client's taskId (which may
    # name the patient); tests/reports/test_deidentify.py checks the profile itself.
    assert sr.PatientID.startswith("ANON") and sr.PatientIdentityRemoved == "YES"
    assert task_id not in files["report.dcm"].decode("latin-1")
    channel, client = stub(settings.api.grpc_target)
    with channel:
        reply = client.GetArtifact(pb.GetArtifactRequest(task_id=task_id, name="report.dcm"))
        assert reply.media_type == "application/dicom" and reply.data == files["report.dcm"]
        status, code, _ = code_of(
            lambda: client.GetArtifact(pb.GetArtifactRequest(task_id="nope", name="report.pdf"))
        )
        assert (status, code) == (grpc.StatusCode.NOT_FOUND, 10009)


def test_pano_without_the_option_has_artifacts_but_no_routes_in_the_callback(stack) -> None:
    _, http, receiver = stack
    task_id = submit(http, receiver.url, "pano")
    (callback,) = callbacks_for(receiver, task_id, timeout=120)
    assert "artifacts" not in json.loads(callback.body)
    response = http.get(f"/api/v1/tasks/{task_id}/overlay.png")
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (1600, 780)
    response = http.get(f"/api/v1/tasks/{task_id}/report.pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")


def test_unknown_task_is_404_10009(stack) -> None:
    _, http, _ = stack
    assert_error(http.get("/api/v1/tasks/no-such-task/report.pdf"), 404, 10009)


def test_failed_task_has_no_artifacts_404_10011_over_rest_and_grpc(stack) -> None:
    """A FAILED task is final: its artifacts will never exist (404 / 10011), unlike a task still
    running (409 / 10010, "ask again later")."""
    settings, http, receiver = stack
    task_id = f"failed-{uuid.uuid4().hex[:8]}"
    body = {
        "taskType": "pano",
        "imageUrl": receiver.url_for("/no-such-image.png"),  # 404 at fetch time: FAILED with 11001
        "callbackUrl": receiver.url,
        "taskId": task_id,
        "options": {"artifacts": ["png", "pdf", "dcm"]},
    }
    assert http.post("/api/v1/analyze", json=body).status_code == 202
    (callback,) = callbacks_for(receiver, task_id, timeout=60)
    sent = json.loads(callback.body)
    assert (sent["status"], sent["code"]) == ("FAILED", 11001)
    assert "artifacts" not in sent
    for name in ALL:
        assert_error(http.get(f"/api/v1/tasks/{task_id}/{name}"), 404, 10011)
    channel, client = stub(settings.api.grpc_target)
    with channel:
        status, code, _ = code_of(
            lambda: client.GetArtifact(pb.GetArtifactRequest(task_id=task_id, name="report.pdf"))
        )
        assert (status, code) == (grpc.StatusCode.NOT_FOUND, 10011)


async def test_unfinished_task_is_409_10010(redis_server: RedisServer) -> None:
    """No worker runs beside this gRPC server: the task stays QUEUED."""
    settings: Settings = make_settings(redis_server.url, key_prefix="art409:")
    async with grpc_for(settings), bridge_to(settings, token=None) as http:
        body = {
            "taskType": "pano",
            "imageBase64": png_b64(samples.pano_image()[:300, :300]),
            "callbackUrl": "https://hooks.example.com/x",
            "taskId": "queued-1",
        }
        assert (await http.post("/api/v1/analyze", json=body)).status_code == 202
        for name in ALL:
            assert_error(await http.get(f"/api/v1/tasks/queued-1/{name}"), 409, 10010)
        bad = {**body, "taskId": "queued-2", "options": {"artifacts": ["png", "tiff"]}}
        details = assert_error(await http.post("/api/v1/analyze", json=bad), 400, 10001)
        assert details[0]["field"] == "options.artifacts"
