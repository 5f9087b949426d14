"""Every contract error the REST layer gives on the real stack, with its HTTP status, in the error
envelope `{code, message, details: [{field, reason}]}`; nothing refused is queued."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.rest.conftest import KEYS, MAX_BODY, MAX_IMAGE, RestStack, analyze_body, assert_error

HOOK = "https://hooks.example.com/cb"


def fields(details: list[dict[str, str]]) -> set[str]:
    return {d["field"] for d in details}


def post(rest: RestStack, body: object, **kwargs: object):  # noqa: ANN201
    return rest.http.post("/api/v1/analyze", json=body, **kwargs)


# ---- 10001 ------------------------------------------------------------------------------------

INVALID: list[tuple[str, dict[str, object], str]] = [
    ("missing taskType", {"taskType": None}, "taskType"),
    ("missing callbackUrl", {"callbackUrl": None}, "callbackUrl"),
    ("empty taskType", {"taskType": ""}, "taskType"),
    ("neither image field", {"imageBase64": None}, "imageUrl"),
    ("both image fields", {"imageUrl": "https://img.example.com/a.png"}, "imageBase64"),
    ("bad base64", {"imageBase64": "not*base64!"}, "imageBase64"),
    ("bad base64 padding", {"imageBase64": "abc"}, "imageBase64"),
    ("empty base64", {"imageBase64": ""}, "imageBase64"),
    ("callbackUrl not http", {"callbackUrl": "ftp://hooks.example.com/cb"}, "callbackUrl"),
    ("callbackUrl not a URL", {"callbackUrl": "not a url"}, "callbackUrl"),
    ("callbackUrl bad port", {"callbackUrl": "http://hooks.example.com:99999/cb"}, "callbackUrl"),
    ("callbackUrl too long", {"callbackUrl": "https://hooks.example.com/" + "a" * 2048}, "callbackUrl"),
    ("imageUrl not http", {"imageBase64": None, "imageUrl": "file:///etc/passwd"}, "imageUrl"),
    ("taskId bad chars", {"taskId": "has space/slash"}, "taskId"),
    ("taskId too long", {"taskId": "a" * 65}, "taskId"),
    ("taskId empty", {"taskId": ""}, "taskId"),
    ("metadata too large", {"metadata": {"blob": "x" * 16_400}}, "metadata"),
    ("metadata not an object", {"metadata": ["a"]}, "metadata"),
    ("unknown field", {"priority": "high"}, "priority"),
    ("unknown option", {"options": {"contrast": 2}}, "options.contrast"),
    ("taskType not a string", {"taskType": 5}, "taskType"),
    ("imageBase64 not a string", {"imageBase64": 123}, "imageBase64"),
    ("callbackUrl not a string", {"callbackUrl": ["https://a.example.com"]}, "callbackUrl"),
    ("pixelSpacingMm a string", {"options": {"pixelSpacingMm": "0.1"}}, "options.pixelSpacingMm"),
    ("pixelSpacingMm a boolean", {"options": {"pixelSpacingMm": True}}, "options.pixelSpacingMm"),
    ("pixelSpacingMm zero", {"options": {"pixelSpacingMm": 0}}, "options.pixelSpacingMm"),
    ("pixelSpacingMm negative", {"options": {"pixelSpacingMm": -0.1}}, "options.pixelSpacingMm"),
    ("toothNumbering unknown", {"options": {"toothNumbering": "PALMER"}}, "options.toothNumbering"),
    ("findings unknown type", {"options": {"findings": ["caries", "cyst"]}}, "options.findings"),
    ("findings not a list", {"options": {"findings": "caries"}}, "options.findings"),
    ("options not an object", {"options": "FDI"}, "options"),
]


@pytest.mark.parametrize(("case", "change", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_parameter(rest: RestStack, case: str, change: dict[str, object], field: str) -> None:
    task_id = f"inv-{uuid.uuid4().hex[:8]}"
    body = (
        analyze_body(HOOK, taskId=task_id, **change)
        if "taskId" not in change
        else analyze_body(HOOK, **change)
    )
    details = assert_error(post(rest, body), 400, 10001)
    assert field in fields(details), details
    if "taskId" not in change:
        assert_error(rest.http.get(f"/api/v1/tasks/{task_id}"), 404, 10009)  # nothing was stored


NOT_AN_OBJECT = "must be a JSON object"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"taskType": "pano",', "invalid JSON"),
        (b"[1, 2]", NOT_AN_OBJECT),
        (b"null", NOT_AN_OBJECT),
        (b'"pano"', NOT_AN_OBJECT),
        (b"\xff\xfe\x00", "invalid JSON"),
        (b"", "required"),
    ],
    ids=["truncated", "array", "null", "string", "not utf-8", "empty"],
)
def test_body_that_is_not_a_json_object(rest: RestStack, raw: bytes, reason: str) -> None:
    response = rest.http.post("/api/v1/analyze", content=raw, headers={"content-type": "application/json"})
    assert assert_error(response, 400, 10001) == [{"field": "body", "reason": reason}]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(rest: RestStack, value: str) -> None:
    # Python's json accepts these words; JSON does not. Neither a spacing nor metadata may carry one.
    for change in (f'"options": {{"pixelSpacingMm": {value}}}', f'"metadata": {{"x": {value}}}'):
        raw = json.dumps(analyze_body(HOOK))[:-1] + ", " + change + "}"
        response = rest.http.post(
            "/api/v1/analyze", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(response, 400, 10001)


def test_data_url_prefix_and_line_breaks_are_accepted(rest: RestStack) -> None:
    b64 = analyze_body(HOOK)["imageBase64"]
    assert isinstance(b64, str)
    wrapped = "data:image/png;base64," + "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    response = post(rest, analyze_body(rest.receiver.url, imageBase64=wrapped))
    assert response.status_code == 202, response.text


def test_image_over_the_limit_is_10001(rest: RestStack) -> None:
    # Within the body limit, over limits.max_image_bytes once decoded.
    image = base64.b64encode(b"\0" * (MAX_IMAGE + 1)).decode()
    assert len(image) < MAX_BODY
    details = assert_error(post(rest, analyze_body(HOOK, imageBase64=image)), 400, 10001)
    assert fields(details) == {"imageBase64"}


# ---- 10002 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_type", ["bitewing", "PANO", "pano "])
def test_unsupported_task_type(rest: RestStack, task_type: str) -> None:
    details = assert_error(post(rest, analyze_body(HOOK, taskType=task_type)), 400, 10002)
    assert fields(details) == {"taskType"}


# ---- 10003 ------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/v1/analyze"),
    ("GET", "/api/v1/tasks/some-task"),
    ("DELETE", "/api/v1/tasks/some-task"),
    ("POST", "/api/v1/tasks/some-task/callback"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        "Bearer " + KEYS[0] + "x",
        "Bearer " + KEYS[0][:-1],
        "Basic dG9rLWE6",
        KEYS[0],
        "Bearer",
        "bearer " + "c" * 43,
        # Values gRPC metadata cannot carry (they gave a plain-text 500 and a 503 before).
        b"Bearer t\xf6k-a",
        b"Bearer tok\t-a",
        "Bearer " + "a" * 6000,
    ],
    ids=lambda v: repr(v)[:24],
)
def test_missing_or_wrong_credentials(
    rest: RestStack, method: str, path: str, authorization: str | bytes | None
) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    with httpx.Client(base_url=rest.url, headers=headers, timeout=10) as client:
        response = client.request(method, path, json=analyze_body(HOOK) if method == "POST" else None)
    assert_error(response, 401, 10003)


def test_both_rotated_keys_are_accepted(rest: RestStack) -> None:
    for token in KEYS:
        response = rest.http.get("/api/v1/tasks/no-such-task", headers={"authorization": f"Bearer {token}"})
        assert_error(response, 404, 10009)  # authorized; the task is simply unknown


# ---- 10005 ------------------------------------------------------------------------------------


def test_body_too_large_by_content_length(rest: RestStack) -> None:
    body = json.dumps(analyze_body(HOOK, imageBase64="A" * MAX_BODY)).encode()
    assert len(body) > MAX_BODY
    response = rest.http.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert "content-length" in response.request.headers
    assert_error(response, 413, 10005)


def test_body_too_large_chunked_without_length(rest: RestStack) -> None:
    body = json.dumps(analyze_body(HOOK, imageBase64="A" * MAX_BODY)).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    response = rest.http.post(
        "/api/v1/analyze", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, 10005)


def test_chunked_body_within_the_limit_is_accepted(rest: RestStack) -> None:
    body = json.dumps(analyze_body(rest.receiver.url)).encode()
    response = rest.http.post(
        "/api/v1/analyze", content=iter([body[:10], body[10:]]), headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


# ---- 10006 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/json"]
)
def test_content_type_not_json(rest: RestStack, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(analyze_body(HOOK)).encode()
    assert_error(rest.http.post("/api/v1/analyze", content=body, headers=headers), 415, 10006)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json"])
def test_json_content_types_are_accepted(rest: RestStack, content_type: str) -> None:
    body = json.dumps(analyze_body(rest.receiver.url)).encode()
    response = rest.http.post("/api/v1/analyze", content=body, headers={"content-type": content_type})
    assert response.status_code == 202, response.text


# ---- 10009 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/tasks/no-such-task"),
        ("DELETE", "/api/v1/tasks/no-such-task"),
        ("POST", "/api/v1/tasks/no-such-task/callback"),
        ("GET", "/api/v1/tasks/%E2%9C%93%20odd"),
    ],
)
def test_unknown_task_is_404(rest: RestStack, method: str, path: str) -> None:
    assert_error(rest.http.request(method, path), 404, 10009)


# ---- SSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/cb",
        "http://192.168.1.1/cb",
        "http://[fd00::1]/cb",
        "http://[::ffff:169.254.169.254]/cb",
        "http://0.0.0.0:8080/cb",
    ],
)
def test_internal_callback_and_image_urls_are_refused(rest: RestStack, url: str) -> None:
    # The stack allow-lists only loopback (for its receiver); every other internal literal is refused.
    assert fields(assert_error(post(rest, analyze_body(url)), 400, 10001)) == {"callbackUrl"}
    body = analyze_body(HOOK, imageBase64=None, imageUrl=url)
    assert fields(assert_error(post(rest, body), 400, 10001)) == {"imageUrl"}


# ---- no route ---------------------------------------------------------------------------------


def test_unknown_route_and_method_still_answer_the_envelope(rest: RestStack) -> None:
    assert_error(rest.http.get("/api/v1/nothing-here"), 404, 10001)
    assert_error(rest.http.put("/api/v1/analyze", json={}), 405, 10001)


# ---- clients that write the whole body before reading the answer ------------------------------


def _urllib_post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """POST with urllib, which sends every byte before it reads the answer (requests does too)."""
    request = urllib.request.Request(
        url + "/api/v1/analyze",
        data=body,
        headers={"content-type": content_type, "authorization": f"Bearer {KEYS[0]}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_too_large_body_sent_before_reading_gets_413(rest: RestStack) -> None:
    # Several times the socket buffers: an early close used to reset the connection mid-write.
    body = json.dumps(analyze_body(HOOK, imageBase64="A" * (8 * MAX_BODY))).encode()
    status, answer = _urllib_post(rest.url, body, "application/json")
    assert (status, answer["code"]) == (413, 10005)


def test_json_sent_as_text_plain_before_reading_gets_415(rest: RestStack) -> None:
    # 415 is answered before the size is looked at (docs/api.md's order of checks).
    body = json.dumps(analyze_body(HOOK, imageBase64="A" * (4 * MAX_BODY))).encode()
    status, answer = _urllib_post(rest.url, body, "text/plain")
    assert (status, answer["code"]) == (415, 10006)


def test_empty_and_oversized_images_are_the_services_rule_once(rest: RestStack) -> None:
    # The bridge decodes base64 only; the gRPC service's check answers (same codes, same field).
    over = base64.b64encode(b"\0" * (MAX_IMAGE + 2)).decode()  # within the bridge's pre-decode bound
    for image, reason in (("", "empty image"), (over, f"image larger than {MAX_IMAGE} bytes")):
        details = assert_error(post(rest, analyze_body(HOOK, imageBase64=image)), 400, 10001)
        assert details == [{"field": "imageBase64", "reason": reason}]
