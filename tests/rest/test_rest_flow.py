"""The happy path over real HTTP: submit -> callback (Standard Webhooks, both secrets verify) ->
GET shows SUCCEEDED/DELIVERED; idempotent resubmission; replay of a finished task's callback;
a processing failure in the callback; cancel of a finished task (409 10010)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

from tests.callbacks.helpers import CALLBACK_FIELDS
from tests.rest.conftest import (
    KEYS,
    SECRETS,
    RestStack,
    analyze_body,
    assert_error,
    callbacks_for,
    wait_task,
)


def verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the Standard Webhooks spec (not the service's code)."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def delivered(task: dict) -> bool:
    return task["callback"]["state"] == "DELIVERED"


def test_submit_callback_and_get(rest: RestStack) -> None:
    task_id = f"flow-{uuid.uuid4().hex[:8]}"
    metadata = {"patient": "p-1", "nested": {"n": [1, 2.5, "x"]}}
    response = rest.http.post(
        "/api/v1/analyze", json=analyze_body(rest.receiver.url, taskId=task_id, metadata=metadata)
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "code": 0,
        "message": "accepted",
        "data": {"taskId": task_id, "status": "QUEUED"},
    }

    (callback,) = callbacks_for(rest.receiver, task_id)
    headers = lower(callback.headers)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert len(headers["webhook-signature"].split()) == len(SECRETS)
    for secret in SECRETS:  # rotation: either secret verifies
        assert verifies(secret, headers, callback.body)
    assert not verifies("not-the-secret", headers, callback.body)

    body = callback.json()
    assert set(body) == CALLBACK_FIELDS
    assert (body["taskId"], body["taskType"], body["status"], body["code"]) == (
        task_id,
        "pano",
        "SUCCEEDED",
        0,
    )
    assert body["metadata"] == metadata
    # A pano image without spacing: 0 and "" (printed, as every default-valued field); no findings.
    assert body["data"]["image"] == {"width": 64, "height": 48, "pixelSpacingMm": 0.0, "spacingSource": ""}
    assert body["data"]["findings"] == []
    assert body["model"] == {"name": "echo-test", "version": "0"}
    assert set(body["timing"]) == {"queuedMs", "processingMs", "totalMs"}
    assert all(isinstance(v, int) and v >= 0 for v in body["timing"].values())
    assert body["completedAt"].endswith("Z")

    task = wait_task(rest.http, task_id, delivered)
    assert task["taskId"] == task_id and task["status"] == "SUCCEEDED"
    assert task["pano"]["image"] == body["data"]["image"] and task["pano"]["findings"] == []
    assert task["callback"]["url"] == rest.receiver.url
    assert task["callback"]["attempts"] == 1 and task["callback"]["lastStatusCode"] == 200
    assert task["metadata"] == metadata
    assert {"createdAt", "startedAt", "finishedAt"} <= set(task)


def test_generated_task_id_and_rotated_token(rest: RestStack) -> None:
    response = rest.http.post(
        "/api/v1/analyze",
        json=analyze_body(rest.receiver.url),
        headers={"authorization": f"Bearer {KEYS[1]}"},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["data"]["taskId"]
    assert task_id
    assert callbacks_for(rest.receiver, task_id)[0].json()["status"] == "SUCCEEDED"


def test_identical_resubmission_is_idempotent(rest: RestStack) -> None:
    task_id = f"idem-{uuid.uuid4().hex[:8]}"
    body = analyze_body(rest.receiver.url, taskId=task_id, options={"toothNumbering": "UNIVERSAL"})
    first = rest.http.post("/api/v1/analyze", json=body)
    assert first.status_code == 202 and first.json()["data"]["taskId"] == task_id
    wait_task(rest.http, task_id, delivered)

    again = rest.http.post("/api/v1/analyze", json=body)
    assert again.status_code == 202, again.text
    # The task's current state, not a new task.
    assert again.json() == {
        "code": 0,
        "message": "accepted",
        "data": {"taskId": task_id, "status": "SUCCEEDED"},
    }
    assert wait_task(rest.http, task_id, delivered)["callback"]["attempts"] == 1

    changed = rest.http.post("/api/v1/analyze", json={**body, "metadata": {"other": True}})
    details = assert_error(changed, 409, 10004)
    assert details == [] or details[0]["field"] == "taskId"


def test_replay_resends_with_the_same_webhook_id(rest: RestStack) -> None:
    task_id = f"replay-{uuid.uuid4().hex[:8]}"
    assert (
        rest.http.post("/api/v1/analyze", json=analyze_body(rest.receiver.url, taskId=task_id)).status_code
        == 202
    )
    wait_task(rest.http, task_id, delivered)
    first = callbacks_for(rest.receiver, task_id)[0]

    response = rest.http.post(f"/api/v1/tasks/{task_id}/callback")
    assert response.status_code == 202, response.text
    envelope = response.json()
    assert envelope["code"] == 0 and envelope["data"]["taskId"] == task_id
    assert envelope["data"]["callback"]["state"] == "PENDING"

    second = callbacks_for(rest.receiver, task_id, count=2)[1]
    # CONTRACT 4: one webhook-id per task result, the same on every retry; receivers deduplicate on it.
    assert lower(second.headers)["webhook-id"] == lower(first.headers)["webhook-id"]
    assert second.json() == first.json()
    for secret in SECRETS:
        assert verifies(secret, lower(second.headers), second.body)
    assert wait_task(rest.http, task_id, delivered)["callback"]["attempts"] == 1


def test_processing_failure_reaches_the_callback(rest: RestStack) -> None:
    task_id = f"bad-{uuid.uuid4().hex[:8]}"
    not_an_image = base64.b64encode(b"this is not an image at all" * 4).decode()
    body = analyze_body(rest.receiver.url, taskId=task_id, imageBase64=not_an_image)
    assert rest.http.post("/api/v1/analyze", json=body).status_code == 202

    callback = callbacks_for(rest.receiver, task_id)[0].json()
    assert (callback["status"], callback["code"], callback["data"]) == ("FAILED", 11002, None)
    task = wait_task(rest.http, task_id, delivered)
    assert task["status"] == "FAILED" and task["error"]["code"] == 11002


def test_delete_of_a_finished_task_erases_it(rest: RestStack) -> None:
    task_id = f"done-{uuid.uuid4().hex[:8]}"
    assert (
        rest.http.post("/api/v1/analyze", json=analyze_body(rest.receiver.url, taskId=task_id)).status_code
        == 202
    )
    wait_task(rest.http, task_id, lambda t: t["status"] == "SUCCEEDED")
    erased = rest.http.delete(f"/api/v1/tasks/{task_id}")
    assert erased.status_code == 200 and erased.json()["data"] == {"taskId": task_id, "erased": True}
    assert_error(rest.http.get(f"/api/v1/tasks/{task_id}"), 404, 10009)
    assert_error(rest.http.delete(f"/api/v1/tasks/{task_id}"), 404, 10009)
