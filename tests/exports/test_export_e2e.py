"""Exports end to end: real redis-server, `dentalai grpc`, a real worker making real artifacts
(tests.reports.sample_worker), `dentalai dispatcher`, `dentalai api` and a real Orthanc. A client
that keeps identifiers submits a DICOM ceph over REST; its results land in the source study, at
the client's default destination (C-STORE) or at the one the request names (STOW-RS)."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pydicom
import pytest

from tests.conftest import Processes, RedisServer, api_key, client_entry, make_settings
from tests.dicom.orthanc import Orthanc
from tests.exports.conftest import destinations
from tests.exports.helpers import Results, study_instances

KEY = api_key("export-client")


@pytest.fixture(scope="module")
def api(
    redis_server: RedisServer, orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    client = client_entry(
        "clinic-a", KEY, deidentify=False, export_to="pacs", export_destinations=["pacs-web"]
    )
    settings = make_settings(
        redis_server.url, auth={"clients": [client]}, exports={"destinations": destinations(orthanc)}
    )
    procs = Processes(log_dir=tmp_path_factory.mktemp("exports-e2e"))
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start([], settings, module="tests.reports.sample_worker", wait_line="worker ready", timeout=90)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        procs.start(["api"], settings, wait_port=settings.api.port)
        url, headers = f"http://127.0.0.1:{settings.api.port}", {"authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            yield http
    finally:
        procs.stop_all()


def submit(http: httpx.Client, source: bytes, **options: Any) -> httpx.Response:
    body = {
        "taskType": "ceph", "taskId": f"ceph-{uuid.uuid4().hex[:8]}", "callbackUrl": "http://127.0.0.1:9/hook",
        "imageBase64": base64.b64encode(source).decode(), "options": options,
    }  # fmt: skip
    return http.post("/api/v1/analyze", json=body)


def final_export(http: httpx.Client, task_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = http.get(f"/api/v1/tasks/{task_id}").json()["data"]
        export = task.get("export", {})
        if export.get("state") in ("EXPORT_DELIVERED", "EXPORT_FAILED", "EXPORT_EXHAUSTED", "EXPORT_SKIPPED"):
            return task
        time.sleep(0.1)
    raise TimeoutError(f"export of {task_id} not final: {task}")


def test_results_reach_the_pacs_in_the_source_study(
    api: httpx.Client, orthanc: Orthanc, results: Results
) -> None:
    orthanc.delete_all()
    orthanc.upload(results.source)
    default = submit(api, results.source)  # the client's export_to: C-STORE
    chosen = submit(api, results.source, exportTo="pacs-web")  # named by the request: STOW-RS
    assert default.status_code == chosen.status_code == 202, (default.text, chosen.text)
    sent: list[str] = []  # SOP Instance UIDs of the files the routes serve
    for reply, destination in ((default, "pacs"), (chosen, "pacs-web")):
        task = final_export(api, reply.json()["data"]["taskId"])
        assert task["status"] == "SUCCEEDED"
        export = task["export"]
        assert export["destination"] == destination and export["state"] == "EXPORT_DELIVERED", export
        assert export["files"] == ["report.dcm", "overlay.dcm"] and export["attempts"] == 1
        for name in export["files"]:
            data = api.get(f"/api/v1/tasks/{task['taskId']}/{name}").content
            sent.append(str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID))
    study = study_instances(orthanc, results.header.StudyInstanceUID)
    # The radiograph, and each task's SR and Secondary Capture, filed under the same patient.
    assert set(study) == {str(results.header.SOPInstanceUID), *sent} and len(sent) == 4
    assert {tags["PatientID"] for tags in study.values()} == {"P-0042"}


def test_unknown_or_foreign_export_to_is_10001(api: httpx.Client, results: Results) -> None:
    for name in ("nowhere", "wrong-ae"):  # not configured; configured, but not this client's
        reply = submit(api, results.source, exportTo=name)
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["code"] == 10001
        reason = "not an export destination of this client"
        assert body["details"] == [{"field": "options.exportTo", "reason": reason}]
