"""The overlay artifact: the result drawn on the radiograph, at most `max_side` pixels on its
longer side (drawing and PNG encoding of a full 2943 x 1435 pano would cost most of the time
budget; the coordinates are scaled by `dentalai.overlay`, which draws teeth, findings and landmarks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
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
    """PNG bytes. zlib level 1 with the "up" filter: on a 1290 x 1600 ceph overlay 58 ms for 1.47 MB,
    against 94 ms (adaptive filters, 1.45 MB) and about 300 ms at Pillow's level 6."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes of the overlay, for the PDF page (a tenth of the PNG's size)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
