"""Hostile image bytes through the worker's decoder: truncated, wrong type, decompression bombs,
DICOM in unusual transfer syntaxes, and fuzzed bytes. Every failure is DentalAIError 11002, never
another exception, and bombs are refused from the header (fast, without allocating pixels)."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.uid import RLELossless

from dentalai.errors import DentalAIError
from grpc_server.decode import decode_image
from tests.security.dicom_samples import (
    ENCAPSULATED,
    NATIVE,
    dataset,
    dicom_bytes,
    encapsulated_garbage,
    native,
)

LIMIT = 120_000_000
PIXELS = (np.arange(300 * 320, dtype=np.uint32).reshape(300, 320) * 7 % 251).astype(np.uint8)


def encoded(fmt: str, pixels: np.ndarray = PIXELS) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def refused(data: bytes, max_pixels: int = LIMIT) -> str:
    with pytest.raises(DentalAIError) as err:
        decode_image(data, max_pixels)
    assert err.value.code == 11002
    return err.value.message


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.02, 0.3, 0.7, 0.95])
def test_truncated_images_are_11002(fmt: str, keep: float) -> None:
    data = encoded(fmt)
    refused(data[: max(8, int(len(data) * keep))])


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\x00", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"PK\x03\x04" + b"\x00" * 60, b"<svg xmlns='http://www.w3.org/2000/svg' width='9999' height='9999'/>",
        b'{"imageBase64": "iVBORw0KGgo="}', b"RIFF\x24\x00\x00\x00WEBPVP8 ", b"\x00\x00\x01\x00\x01\x00",
        b"\x00" * 128 + b"DICM" + b"\xff" * 64,  # DICOM preamble, garbage after
    ],
    ids=["empty", "one-byte", "gif", "pdf", "zip", "svg", "json", "webp", "ico", "dicom-garbage"],
)
def test_wrong_types_are_11002(data: bytes) -> None:
    refused(data)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PPM"])
def test_real_images_of_unsupported_formats_are_11002(fmt: str) -> None:
    assert "supported" in refused(encoded(fmt))


def _fast_and_small(data: bytes, max_pixels: int = LIMIT) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        assert "larger than the limit" in refused(data, max_pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 20 * 2**20, f"allocated {peak} bytes before refusing"


def test_png_bomb_header_is_refused_without_decoding() -> None:
    _fast_and_small(png_header_only(100_000, 100_000, zlib.compress(b"\x00" * 1000)))


def test_real_png_bomb_over_the_configured_limit() -> None:
    # 4000x4000 zeros: 16 MB of pixels in a few KB of file; limit set to 1 MP
    bomb = encoded("PNG", np.zeros((4000, 4000), np.uint8))
    assert len(bomb) < 100_000
    _fast_and_small(bomb, max_pixels=1_000_000)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_other_format_headers_claiming_huge_sizes(fmt: str) -> None:
    data = bytearray(encoded(fmt, np.zeros((2, 2), np.uint8)))
    if fmt == "BMP":  # BITMAPINFOHEADER width/height at offsets 18 and 22
        data[18:26] = struct.pack("<ii", 60_000, 60_000)
    else:  # ImageWidth (256) and ImageLength (257) tags claiming 60000x60000
        buffer = io.BytesIO()
        Image.new("L", (2, 2)).save(buffer, format="TIFF", tiffinfo={256: 60_000, 257: 60_000})
        data = bytearray(buffer.getvalue())
    _fast_and_small(bytes(data))


def test_dicom_bomb_rows_columns_frames() -> None:
    ds = dataset(np.zeros((2, 2), np.uint8), NATIVE[1], NumberOfFrames=2000)
    ds.Rows, ds.Columns = 4096, 4096
    ds.PixelData = b"\x00" * 16
    _fast_and_small(dicom_bytes(ds, NATIVE[1]))


@pytest.mark.parametrize("syntax", NATIVE, ids=[s.name for s in NATIVE])
def test_dicom_native_transfer_syntaxes_decode_exactly(syntax: object) -> None:
    pixels = (np.arange(300 * 320).reshape(300, 320) % 4000).astype(np.uint16)
    image = decode_image(native(pixels, syntax, PixelSpacing=[0.1, 0.1]), LIMIT)  # type: ignore[arg-type]
    assert np.array_equal(image.pixels, pixels) and image.pixel_spacing_mm == pytest.approx(0.1)


def test_dicom_rle_lossless_decodes_exactly() -> None:
    pixels = (np.arange(300 * 320).reshape(300, 320) % 250).astype(np.uint8)
    ds = dataset(pixels, NATIVE[1])
    ds.PixelData = pixels.tobytes()
    ds.compress(RLELossless, pixels)
    assert np.array_equal(decode_image(dicom_bytes(ds, NATIVE[1]), LIMIT).pixels, pixels)


@pytest.mark.parametrize("syntax", ENCAPSULATED, ids=[s.name for s in ENCAPSULATED])
def test_dicom_compressed_syntax_with_corrupt_payload_is_11002(syntax: object) -> None:
    refused(encapsulated_garbage(syntax))  # type: ignore[arg-type]


def test_dicom_pixel_data_shorter_than_declared_is_11002() -> None:
    data = native(np.zeros((300, 320), np.uint16), NATIVE[1])
    refused(data[: len(data) - 50_000])


SEEDS = {
    "png": encoded("PNG"), "jpeg": encoded("JPEG"), "bmp": encoded("BMP"), "tiff": encoded("TIFF"),
    "dicom": native(PIXELS, NATIVE[1]),
}


def _decode_or_11002(data: bytes) -> None:
    try:
        image = decode_image(data, 2_000_000)
    except DentalAIError as err:
        assert err.code == 11002
    else:
        assert image.pixels.ndim == 2 and image.pixels.size > 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.none() | st.integers(0, 10**6),
)
def test_fuzzed_images_only_ever_fail_with_11002(
    seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    _decode_or_11002(bytes(data))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_fail_with_11002(data: bytes) -> None:
    _decode_or_11002(data)
