"""A stack with no worker (real gRPC server + Redis, bridge in process): tasks stay QUEUED, so
cancel, replay of an unfinished task, queue full, readiness without a worker and the strict SSRF
rules (nothing allow-listed) can be seen."""

from __future__ import annotations

import uuid

from dentalai.config import Settings
from tests.conftest import RedisServer
from tests.rest.conftest import analyze_body, assert_error, bridge_to, grpc_for, stack_settings

HOOK = "https://hooks.example.com/cb"


def no_worker(redis: RedisServer, **overrides: object) -> Settings:
    return stack_settings(redis.url, **overrides)


async def test_cancel_a_queued_task(redis_server: RedisServer) -> None:
    settings = no_worker(redis_server)
    task_id = f"c-{uuid.uuid4().hex[:8]}"
    async with grpc_for(settings), bridge_to(settings) as http:
        accepted = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId=task_id))
        assert accepted.status_code == 202, accepted.text

        response = await http.delete(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["code"] == 0 and body["message"] == "cancelled"
        assert body["data"]["taskId"] == task_id and body["data"]["status"] == "CANCELLED"

        task = (await http.get(f"/api/v1/tasks/{task_id}")).json()["data"]
        assert task["status"] == "CANCELLED" and "finishedAt" in task
        # Once cancelled it is final: a replay is 409 10010, the same body again is the same
        # (cancelled) task, not a new one; a second DELETE erases it.
        assert_error(await http.post(f"/api/v1/tasks/{task_id}/callback"), 409, 10010)
        again = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId=task_id))
        assert again.status_code == 202 and again.json()["data"]["status"] == "CANCELLED"
        erased = await http.delete(f"/api/v1/tasks/{task_id}")
        assert erased.status_code == 200 and erased.json()["message"] == "erased"
        assert_error(await http.get(f"/api/v1/tasks/{task_id}"), 404, 10009)


async def test_replay_of_an_unfinished_task_is_409(redis_server: RedisServer) -> None:
    settings = no_worker(redis_server)
    task_id = f"r-{uuid.uuid4().hex[:8]}"
    async with grpc_for(settings), bridge_to(settings) as http:
        assert (
            await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId=task_id))
        ).status_code == 202
        assert_error(await http.post(f"/api/v1/tasks/{task_id}/callback"), 409, 10010)
        task = (await http.get(f"/api/v1/tasks/{task_id}")).json()["data"]
        assert task["status"] == "QUEUED" and task["callback"]["state"] == "NOT_DUE"


async def test_queue_full_is_429_with_retry_after(redis_server: RedisServer) -> None:
    settings = no_worker(redis_server, limits={"queue_max_length": 2})
    async with grpc_for(settings), bridge_to(settings) as http:
        for n in range(2):
            response = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId=f"q{n}"))
            assert response.status_code == 202, response.text
        refused = await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId="q2"))
        assert_error(refused, 429, 10007)
        assert int(refused.headers["retry-after"]) > 0
        assert_error(await http.get("/api/v1/tasks/q2"), 404, 10009)  # nothing was accepted
        # A resubmission of a queued task is still answered (it queues nothing).
        assert (await http.post("/api/v1/analyze", json=analyze_body(HOOK, taskId="q0"))).status_code == 202
        metrics = (await http.get("/metrics")).text
        assert "dentalai_queue_depth 2.0" in metrics


async def test_not_ready_without_a_worker(redis_server: RedisServer) -> None:
    settings = no_worker(redis_server)
    async with grpc_for(settings), bridge_to(settings) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == 10008 and body["details"] == [] and "worker" in body["message"]
        assert body["data"] == {
            "storeReachable": True,
            "ready": False,
            "workers": 0,
            "models": [],
            "taskTypes": [],
            "runtimes": [],
        }
        assert (await http.get("/healthz")).status_code == 200


async def test_loopback_is_refused_when_not_allow_listed(redis_server: RedisServer) -> None:
    settings = no_worker(redis_server, ssrf={"allow_cidrs": [], "allow_hosts": []})
    async with grpc_for(settings), bridge_to(settings) as http:
        for url in (
            "http://127.0.0.1:8080/cb",
            "http://127.1.2.3/cb",
            "http://[::1]/cb",
            "http://169.254.169.254/",
        ):
            details = assert_error(await http.post("/api/v1/analyze", json=analyze_body(url)), 400, 10001)
            assert [d["field"] for d in details] == ["callbackUrl"], url
            image = analyze_body(HOOK, imageBase64=None, imageUrl=url)
            details = assert_error(await http.post("/api/v1/analyze", json=image), 400, 10001)
            assert [d["field"] for d in details] == ["imageUrl"], url
        # A public literal passes the submission check (names are checked when resolved).
        assert (
            await http.post("/api/v1/analyze", json=analyze_body("http://93.184.216.34/cb"))
        ).status_code == 202
