"""Pure callback rules: classification, delays with jitter, Retry-After, signatures, body."""

from __future__ import annotations

import base64
import json
import random
import time
from email.utils import formatdate

import pytest

from dentalai.task_json import callback_body, callback_bytes, task_dict
from dentalai.v1 import results_pb2, task_pb2
from grpc_server import callbacks
from grpc_server.callbacks import Outcome, classify, parse_retry_after, retry_delay
from tests.callbacks.helpers import CALLBACK_FIELDS


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(status) == Outcome.DELIVERED


@pytest.mark.parametrize("status", [None, 408, 425, 429, 500, 502, 503, 504, 599])
def test_retried_answers(status: int | None) -> None:
    assert classify(status) == Outcome.RETRY


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 410, 413, 422])
def test_other_answers_fail_without_retry(status: int) -> None:
    assert classify(status) == Outcome.FAILED


def test_default_schedule_is_six_attempts_with_jitter() -> None:
    delays = [5, 30, 120, 600, 1800]
    rng = random.Random(1)
    for attempt, base in enumerate(delays, start=1):
        for _ in range(200):
            d = retry_delay(attempt, delays, 0.2, rng=rng)
            assert d is not None and base * 0.8 <= d <= base * 1.2
    assert retry_delay(6, delays, 0.2) is None  # the 6th attempt was the last


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert retry_delay(1, [5], 0.0, retry_after=90, max_retry_after=3600) == 90
    assert retry_delay(1, [5], 0.0, retry_after=7200, max_retry_after=3600) == 3600
    assert retry_delay(1, [5], 0.0, retry_after=1, max_retry_after=3600) == 5  # never sooner than planned


def test_retry_after_forms() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now=now) == pytest.approx(60, abs=1)
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0
    assert (
        parse_retry_after("soon") is None
        and parse_retry_after(None) is None
        and parse_retry_after("-3") is None
    )


def test_signature_matches_the_standard_webhooks_formula() -> None:
    body = b'{"a":1}'
    headers = callbacks.webhook_headers("msg_1", 1700000000, body, ["s3cret"])
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b"s3cret", b"msg_1.1700000000." + body, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + expected.decode()
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == "1700000000"


def test_whsec_secret_uses_its_decoded_bytes() -> None:
    key = b"\x01\x02binary-key"
    secret = "whsec_" + base64.b64encode(key).decode()
    assert callbacks.signing_key(secret) == key


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    body = b"{}"
    ts = int(time.time())
    headers = callbacks.webhook_headers("msg_2", ts, body, ["old", "new"])
    assert len(headers["webhook-signature"].split()) == 2
    assert callbacks.verify("old", headers, body) and callbacks.verify("new", headers, body)
    assert not callbacks.verify("other", headers, body)
    assert not callbacks.verify("new", headers, body + b" ")


def test_no_secret_no_signature_header() -> None:
    assert "webhook-signature" not in callbacks.webhook_headers("m", 1, b"", [])


def test_stale_timestamp_does_not_verify() -> None:
    old = int(time.time()) - 3600
    headers = callbacks.webhook_headers("m", old, b"x", ["k"])
    assert not callbacks.verify("k", headers, b"x")


def _task(failed: bool) -> task_pb2.Task:
    task = task_pb2.Task(
        task_id="abc", task_type="pano", status=task_pb2.FAILED if failed else task_pb2.SUCCEEDED
    )
    task.finished_at.FromSeconds(1700000000)
    task.model.name, task.model.version = "pano-teeth", "1.0.0"
    task.timing.queued_ms, task.timing.processing_ms, task.timing.total_ms = 5, 10, 15
    task.metadata.update({"clinic": "x", "n": 2})
    if failed:
        task.error.code, task.error.message = 11002, "bad image"
    else:
        task.pano.CopyFrom(results_pb2.PanoResult(image=results_pb2.PanoImage(width=3, height=4)))
    return task


def test_success_body_has_contract_fields_in_proto_json() -> None:
    body = callback_body(_task(False))
    assert set(body) == CALLBACK_FIELDS
    assert body["status"] == "SUCCEEDED" and body["code"] == 0
    assert body["data"]["image"] == {"width": 3, "height": 4, "pixelSpacingMm": 0.0, "spacingSource": ""}
    assert body["data"]["teeth"] == [] and body["data"]["missingTeeth"] == []  # defaults printed
    assert body["data"]["findings"] == []
    assert body["metadata"] == {"clinic": "x", "n": 2}
    assert body["model"] == {"name": "pano-teeth", "version": "1.0.0"}
    assert body["timing"] == {"queuedMs": 5, "processingMs": 10, "totalMs": 15}
    assert body["completedAt"] == "2023-11-14T22:13:20Z"
    assert json.loads(callback_bytes(_task(False))) == body


def test_failure_body_has_code_and_null_data() -> None:
    body = callback_body(_task(True))
    assert body["status"] == "FAILED" and body["code"] == 11002 and body["message"] == "bad image"
    assert body["data"] is None


def test_rest_task_shows_timing_as_numbers_like_the_callback() -> None:
    task = _task(False)
    assert task_dict(task)["timing"] == callback_body(task)["timing"]


class _Fixed(random.Random):
    """A random source whose every draw is `u` in [0, 1] (uniform(a, b) = a + (b - a) * u)."""

    def __init__(self, u: float) -> None:
        super().__init__(0)
        self.u = u

    def random(self) -> float:
        return self.u


@pytest.mark.parametrize(("u", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_jitter_ends_are_the_delay_minus_and_plus_the_jitter(u: float, factor: float) -> None:
    """+-20 % (CONTRACT section 4): the lowest draw gives 0.8 x the delay, the highest 1.2 x."""
    delays = [5, 30, 120, 600, 1800]
    for attempt, base in enumerate(delays, start=1):
        assert retry_delay(attempt, delays, 0.2, rng=_Fixed(u)) == pytest.approx(base * factor)


def test_jitter_is_symmetric_around_the_delay() -> None:
    """Draws spread over the whole band on both sides of the nominal delay, centred on it: a jitter
    that only ever delays (or only hastens) retries would bunch receivers' retries on one side."""
    rng = random.Random(7)
    base = 120
    samples = [retry_delay(3, [5, 30, base, 600, 1800], 0.2, rng=rng) for _ in range(4000)]
    below = sum(1 for d in samples if d < base)
    above = sum(1 for d in samples if d > base)
    assert min(samples) < base * 0.82 and max(samples) > base * 1.18
    assert abs(below - above) < 400, (below, above)  # about half on each side
    assert sum(samples) / len(samples) == pytest.approx(base, rel=0.01)
    assert all(base * 0.8 <= d <= base * 1.2 for d in samples)
