"""Image preparation shared by training and the service (numpy and OpenCV only, no torch).

The UFBA training images are panoramics stretched to 512x512; real ones are about 2:1 and
2000-3000 px wide. Both are resized (stretched) to the model's fixed H x W, so the network always
sees the same geometry, and results are mapped back with per-axis scale factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Model input: half the height of the 512x512 training images, full width. Teeth are tall and
# narrow, so horizontal resolution matters more than vertical for their outlines.
INPUT_HEIGHT = 256
INPUT_WIDTH = 512
# Percentiles that define the intensity window before standardisation (robust to burnt-in text
# and black borders).
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.0


@dataclass(frozen=True)
class Resized:
    """A model-ready tensor and the factors that map model pixels back to the input image."""

    tensor: np.ndarray  # float32 (1, H, W)
    scale_x: float  # input px per model px
    scale_y: float


def to_gray_float(pixels: np.ndarray) -> np.ndarray:
    """Any 2-D uint8/uint16/float array (or HxWx3) as float32 gray; a 2-D float32 array is returned
    as it is (not copied: the callers never write into it), so a pipeline converts a film once."""
    if pixels.ndim == 3:
        if pixels.shape[2] == 3:
            pixels = cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2GRAY)
        else:
            pixels = pixels[..., 0]
    return pixels.astype(np.float32, copy=False)


def window(gray: np.ndarray) -> np.ndarray:
    """The [1, 99] percentile window scaled to [0, 1] (float32)."""
    lo, hi = np.percentile(gray, [LOW_PERCENTILE, HIGH_PERCENTILE])
    return np.clip((gray - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance (float32)."""
    return ((x - x.mean()) / max(float(x.std()), 1e-6)).astype(np.float32)


def normalise(gray: np.ndarray) -> np.ndarray:
    """Clip to the [1, 99] percentile window, then zero mean and unit variance per image."""
    return standardise(window(gray))


def prepare(pixels: np.ndarray, height: int = INPUT_HEIGHT, width: int = INPUT_WIDTH) -> Resized:
    """Stretch any panoramic to the model size (INTER_AREA when shrinking) and normalise it."""
    gray = to_gray_float(pixels)
    h, w = gray.shape
    interp = cv2.INTER_AREA if (w > width or h > height) else cv2.INTER_LINEAR
    small = cv2.resize(gray, (width, height), interpolation=interp)
    return Resized(tensor=normalise(small)[None], scale_x=w / width, scale_y=h / height)
