"""The overlay artifact: the result drawn on the radiograph, at most `max_side` pixels on its
longer side (drawing and PNG encoding of a full 2943 x 1435 pano would cost most of the time
budget; the coordinates are scaled by `dentalai.overlay`, which draws teeth, findings and landmarks)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any

import cv2
import deflate
import numpy as np

from dentalai import overlay


def fit(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """The image shrunk so that its longer side is at most max_side (never enlarged)."""
    h, w = pixels.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return pixels
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def render(pixels: np.ndarray, data: Mapping[str, Any], max_side: int) -> np.ndarray:
    """RGB uint8 overlay of a result dict (proto3 JSON of CephResult / PanoResult)."""
    small = fit(pixels, max_side)
    return overlay.render(small, data)


def png(rgb: np.ndarray) -> bytes:
    """PNG bytes: the "up" filter on every row, compressed by libdeflate at level 2. Compression is
    the cost here, not filtering: on a 1290 x 1600 ceph overlay zlib level 1 (OpenCV's encoder)
    took 54-62 ms for 1.47 MB, libdeflate level 1 22 ms for 1.39 MB (bench/artifacts_latency.py);
    level 2 gives 1.18 MB (-15 %; a DC1000 pano's 0.97 -> 0.84 MB) for about 3 ms more, level 3
    1.16 MB for 8 ms more; "sub" and Paeth filters compress worse or cost more (bench/storage.py
    keeps these bytes in Redis for the task's lifetime)."""
    h, w = rgb.shape[:2]
    rows = np.ascontiguousarray(rgb, np.uint8).reshape(h, w * 3)
    filtered = np.empty((h, w * 3 + 1), np.uint8)
    filtered[:, 0] = 2  # filter type "up": each byte minus the one above it (mod 256)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, no interlace
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", deflate.zlib_compress(filtered.tobytes(), 2)),
        _chunk(b"IEND", b""),
    ))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes of the overlay, for the PDF page and overlay.dcm (a tenth of the PNG's size)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
