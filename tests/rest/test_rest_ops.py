"""Operations routes on the real stack: /healthz, /readyz (worker seen), /metrics (Prometheus text
with the latency histogram, task counts, queue depth and callback attempts), /openapi.json."""

from __future__ import annotations

import uuid

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from grpc_server.keys import Keys
from tests.rest.conftest import RestStack, analyze_body, callbacks_for, wait_task


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_healthz_needs_no_token(rest: RestStack) -> None:
    response = httpx.get(f"{rest.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "alive", "data": None}


def test_readyz_with_a_worker(rest: RestStack) -> None:
    response = httpx.get(f"{rest.url}/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0 and body["message"] == "ready"
    assert body["data"]["storeReachable"] is True and body["data"]["ready"] is True
    assert body["data"]["workers"] >= 1
    # The echo worker of the stack reports its test pipeline as its loaded model.
    assert body["data"]["models"] and body["data"]["taskTypes"] and body["data"]["runtimes"]


def test_metrics_after_a_delivered_task(rest: RestStack) -> None:
    task_id = f"m-{uuid.uuid4().hex[:8]}"
    assert (
        rest.http.post("/api/v1/analyze", json=analyze_body(rest.receiver.url, taskId=task_id)).status_code
        == 202
    )
    callbacks_for(rest.receiver, task_id)
    wait_task(rest.http, task_id, lambda t: t["callback"]["state"] == "DELIVERED")
    rest.http.get("/api/v1/tasks/no-such-task")  # a 404 is observed too

    response = httpx.get(f"{rest.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    latency = found["dentalai_http_request_duration_seconds_count"]
    routes = {(labels["route"], labels["method"], labels["status"]) for labels, _ in latency}
    assert ("/api/v1/analyze", "POST", "202") in routes
    assert ("/api/v1/tasks/{taskId}", "GET", "404") in routes  # the template, not the raw path
    assert not any("no-such-task" in route for route, _, _ in routes)
    assert "dentalai_http_request_duration_seconds_bucket" in found

    tasks = {labels["status"]: value for labels, value in found["dentalai_tasks"]}
    assert tasks.get("SUCCEEDED", 0) >= 1
    assert len(found["dentalai_queue_depth"]) == 1 and found["dentalai_queue_depth"][0][1] >= 0
    attempts = {labels["outcome"]: value for labels, value in found["dentalai_callback_attempts_total"]}
    assert attempts.get("delivered", 0) >= 1
    assert found["dentalai_store_reachable"][0][1] == 1.0
    assert found["dentalai_ready"][0][1] == 1.0
    assert found["dentalai_workers"][0][1] >= 1


def test_metrics_count_dicom_instances_and_exports_by_outcome(rest: RestStack) -> None:
    # The DICOM node and the exporter count in Redis (keys.Keys.dicom_stats, export_stat); the
    # bridge shows what GetServiceStatus reads from there.
    keys = Keys(rest.settings.key_prefix)
    r = redis.Redis.from_url(rest.settings.redis_url)
    r.hincrby(keys.dicom_stats, "unrouted", 3)
    r.incrby(keys.export_stat("delivered"), 2)
    found = samples(httpx.get(f"{rest.url}/metrics").text)
    dicom = {labels["outcome"]: value for labels, value in found["dentalai_dicom_instances_total"]}
    exports = {labels["outcome"]: value for labels, value in found["dentalai_export_attempts_total"]}
    assert dicom["unrouted"] >= 3 and exports["delivered"] >= 2


def test_openapi_lists_the_contract_routes(rest: RestStack) -> None:
    response = httpx.get(f"{rest.url}/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert set(paths["/api/v1/analyze"]) == {"post"}
    assert set(paths["/api/v1/tasks/{taskId}"]) == {"get", "delete"}
    assert set(paths["/api/v1/tasks/{taskId}/callback"]) == {"post"}
    for route in ("/healthz", "/readyz", "/metrics"):
        assert "get" in paths[route]
    post = paths["/api/v1/analyze"]["post"]
    assert "202" in post["responses"]
    assert {"400", "401", "409", "413", "415", "429", "503"} <= set(post["responses"])
    body = spec["components"]["schemas"]["AnalyzeBody"]
    assert set(body["required"]) == {"taskType", "callbackUrl"}
    assert body.get("additionalProperties") is False
    assert set(spec["components"]["schemas"]["ErrorEnvelope"]["properties"]) == {"code", "message", "details"}
