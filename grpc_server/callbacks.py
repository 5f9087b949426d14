"""Callback delivery rules (CONTRACT.md section 4): headers, signature, and the retry policy.

Pure functions; the dispatcher (dispatcher.py) does the I/O. The retry policy (`plan_next`,
`retry_delay`) is also the export schedule's (exports.py): one schedule for both.

Signing follows Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`,
one space-separated entry per configured secret (rotation: receivers accept any of them). A secret
written `whsec_<base64>` (the Standard Webhooks format) uses the decoded bytes as key; any other
secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import NamedTuple

RETRY_STATUSES = frozenset({408, 425, 429})


class Outcome(StrEnum):
    """Outcome of one attempt; also the suffix of the stats:callback:{outcome} counters."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # a status that is not retried, or a refused address
    EXHAUSTED = "exhausted"  # a retryable failure on the last attempt


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secrets:
        headers["webhook-signature"] = " ".join(signature(s, msg_id, timestamp, body) for s in secrets)
    return headers


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300) -> bool:
    """What a receiver does: any `v1,` entry matches, and the timestamp is recent (replays)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, timestamp = lower["webhook-id"], int(lower["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = signature(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in lower.get("webhook-signature", "").split())


def classify(status_code: int | None) -> str:
    """DELIVERED for 2xx; RETRY for no answer (None), 408, 425, 429 and 5xx; FAILED otherwise."""
    if status_code is None:
        return Outcome.RETRY
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code in RETRY_STATUSES or 500 <= status_code < 600:
        return Outcome.RETRY
    return Outcome.FAILED


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(
    attempts: int,
    delays: Sequence[float],
    jitter: float,
    retry_after: float | None = None,
    max_retry_after: float = 3600,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after `attempts` attempts have failed retryably, or None
    when that was the last one (len(delays) + 1 attempts in all).

    The scheduled delay gets +-jitter; a Retry-After longer than that is honoured up to
    max_retry_after (a longer one is capped, so a receiver cannot park a callback for days)."""
    if attempts > len(delays):
        return None
    base = delays[attempts - 1]
    delay = base * (1 + (rng or random).uniform(-jitter, jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return max(0.0, delay)


class Plan(NamedTuple):
    outcome: str  # an Outcome
    delay: float | None  # seconds until the next attempt; only for RETRY


def plan_next(
    outcome: str,
    attempts: int,
    delays: Sequence[float],
    jitter: float,
    retry_after: float | None = None,
    max_retry_after: float = 3600,
    rng: random.Random | None = None,
) -> Plan:
    """What follows an attempt classified `outcome` (DELIVERED, RETRY or FAILED), the
    `attempts`-th: a RETRY gets its delay, or becomes EXHAUSTED when that was the last attempt."""
    if outcome != Outcome.RETRY:
        return Plan(outcome, None)
    delay = retry_delay(attempts, delays, jitter, retry_after, max_retry_after, rng)
    return Plan(Outcome.EXHAUSTED, None) if delay is None else Plan(Outcome.RETRY, delay)
