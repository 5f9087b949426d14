"""Redis or the gRPC server down: the bridge answers 503 with 10008 and nothing is accepted;
/healthz stays 200, /readyz is 503, /metrics is still served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rest_bridge.app import create_app
from tests.conftest import free_port, start_redis
from tests.rest.conftest import KEYS, analyze_body, assert_error, bridge_to, grpc_for, stack_settings

HOOK = "https://hooks.example.com/cb"


async def test_redis_down_refuses_and_accepts_nothing(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis", appendonly=True)  # survives its restart below
    settings = stack_settings(redis.url)
    try:
        async with grpc_for(settings), bridge_to(settings) as http:
            before = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId="before"))
            assert before.status_code == 202, before.text

            redis.stop()
            refused = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId="during"))
            assert_error(refused, 503, 10008)
            assert_error(await http.get("/api/v1/tasks/before"), 503, 10008)
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["code"] == 10008
            assert ready.json()["data"]["storeReachable"] is False
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and "dentalai_store_reachable 0.0" in metrics.text
            assert (await http.get("/healthz")).status_code == 200

            redis.start()
            assert (await http.get("/api/v1/tasks/before")).json()["data"]["status"] == "QUEUED"
            assert_error(await http.get("/api/v1/tasks/during"), 404, 10009)
    finally:
        redis.stop()


async def test_grpc_server_down_is_503() -> None:
    settings = stack_settings("redis://127.0.0.1:1/0", api={"grpc_target": f"127.0.0.1:{free_port()}"})
    async with bridge_to(settings) as http:
        assert_error(await http.post("/api/v1/analyze", json=analyze_body(HOOK)), 503, 10008)
        for method, path in [
            ("GET", "/api/v1/tasks/x"),
            ("DELETE", "/api/v1/tasks/x"),
            ("POST", "/api/v1/tasks/x/callback"),
        ]:
            assert_error(await http.request(method, path), 503, 10008)
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["code"] == 10008
        assert (await http.get("/healthz")).json() == {"code": 0, "message": "alive", "data": None}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "dentalai_store_reachable 0.0" in metrics.text
        # Auth is still checked first: no header is 401 even with the service down.
        async with bridge_to(settings, token=None) as anonymous:
            assert_error(await anonymous.post("/api/v1/analyze", json=analyze_body(HOOK)), 401, 10003)


async def test_an_unexpected_failure_is_still_the_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = stack_settings("redis://127.0.0.1:1/0")
    app = create_app(settings)

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug in the bridge")

    monkeypatch.setattr(app.state.link, "call", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        response = await http.get("/api/v1/tasks/x", headers={"authorization": f"Bearer {KEYS[0]}"})
    assert_error(response, 500, 13001)
