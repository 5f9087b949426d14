"""The bridge's base64 decoder (pybase64, for speed) accepts and refuses exactly what the standard
library's validating decoder does, line breaks and data-URL prefixes dropped first."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dentalai.errors import DentalAIError
from rest_bridge.app import decode_image

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r -_*é"


def reference(text: str) -> bytes | None:
    """The standard library's answer, or None for a refusal."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def ours(text: str) -> bytes | None:
    try:
        return decode_image(text, max_bytes=1 << 20)
    except DentalAIError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
@example("0000=")  # padding after a whole group: pybase64 refused it, the standard library accepts it
def test_any_text_as_the_standard_library_decides(text: str) -> None:
    assert ours(text) == reference(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=80))
def test_wrapped_base64_decodes(data: bytes, width: int) -> None:
    encoded = base64.b64encode(data).decode()
    wrapped = "\r\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
    assert decode_image(wrapped, max_bytes=1 << 20) == data
    assert decode_image("data:image/png;base64," + encoded, max_bytes=1 << 20) == data


def test_a_data_url_prefix_in_any_case_is_dropped() -> None:
    assert decode_image("DaTa:image/png;base64,aGVsbG8=", max_bytes=100) == b"hello"


def test_too_large_is_refused_before_decoding() -> None:
    with pytest.raises(DentalAIError, match="larger than"):
        decode_image("A" * 400, max_bytes=100)
