"""Callback rules at the edges mutation testing (tools/mutants.yaml) found unguarded:

- the receivers' reference check (callbacks.verify) refuses a timestamp outside the tolerance on
  both sides of now, so a captured callback cannot be replayed later under a future timestamp;
- no 3xx answer is a delivery (the lowest one, 300, included).
"""

from __future__ import annotations

import time

import pytest

from grpc_server import callbacks

SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="


@pytest.mark.parametrize(
    ("offset_s", "ok"), [(0, True), (-290, True), (290, True), (-3600, False), (3600, False)]
)
def test_the_timestamp_must_be_within_the_tolerance_either_way(offset_s: int, ok: bool) -> None:
    body = b'{"taskId":"t"}'
    timestamp = int(time.time()) + offset_s
    headers = callbacks.webhook_headers("msg_1", timestamp, body, [SECRET])
    assert callbacks.verify(SECRET, headers, body, tolerance_s=300) is ok


@pytest.mark.parametrize("status", [300, 304, 307, 308])
def test_no_3xx_counts_as_delivered(status: int) -> None:
    """Redirects are never followed (SSRF), so a 3xx answer is a failed delivery, 300 included."""
    assert callbacks.classify(status) == callbacks.Outcome.FAILED
