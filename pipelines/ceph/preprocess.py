"""Model input preparation shared by the pipeline and training (numpy + OpenCV only, no torch)."""

from __future__ import annotations

import cv2
import numpy as np

# Model input (W x H); heatmaps come out at half of it. Cephalograms are about 4:5 (ISBI 1935x2400,
# Hamedan 1340x1671) so a plain stretch keeps shapes; other aspects are stretched too and mapped back.
INPUT_WIDTH = 256
INPUT_HEIGHT = 320
HEATMAP_STRIDE = 2
LANDMARK_IDS = [
    "S",
    "N",
    "Or",
    "Po",
    "A",
    "B",
    "Pog",
    "Me",
    "Gn",
    "Go",
    "LIT",
    "UIT",
    "UL",
    "LL",
    "Sn",
    "SoftPog",
    "PNS",
    "ANS",
    "Ar",
]
LANDMARK_NAMES = [
    "sella",
    "nasion",
    "orbitale",
    "porion",
    "subspinale",
    "supramentale",
    "pogonion",
    "menton",
    "gnathion",
    "gonion",
    "lower incisal incision",
    "upper incisal incision",
    "upper lip",
    "lower lip",
    "subnasale",
    "soft tissue pogonion",
    "posterior nasal spine",
    "anterior nasal spine",
    "articulare",
]
NUM_LANDMARKS = len(LANDMARK_IDS)


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """Any 2-D / HxWxC uint8/uint16/float array -> 2-D uint8 stretched to the 0.5-99.5 percentiles."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32).mean(axis=2) if img.shape[2] >= 3 else img[..., 0]
    sample = img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)].astype(np.float32)
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if hi - lo < 1e-6:
        return np.zeros(img.shape, np.uint8)
    if img.dtype in (np.uint8, np.uint16):
        # The same stretch applied to every possible value, then looked up: a float pass over a
        # 1935x2400 image cost 29 ms, the table 5 ms (identical output).
        table = _stretch(np.arange(np.iinfo(img.dtype).max + 1, dtype=np.float32), lo, hi)
        return cv2.LUT(img, table) if img.dtype == np.uint8 else table[img]
    return _stretch(img.astype(np.float32), lo, hi)


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((values - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def normalise(gray: np.ndarray) -> np.ndarray:
    """uint8/float image at model size -> float32 zero-mean unit-variance (per image: robust across sites)."""
    x = gray.astype(np.float32) / 255.0
    return (x - x.mean()) / max(float(x.std()), 1e-3)


def prepare(gray: np.ndarray) -> np.ndarray:
    """2-D gray image of any size -> (1, 1, H, W) float32 model input."""
    resized = cv2.resize(gray, (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)
    return normalise(resized)[None, None]
