"""Stage 2: each landmark found again on a patch at the ISBI training resolution (numpy + OpenCV).

Stage 1 sees the whole film at 256x320, where a heatmap cell is 1.5 mm wide on ISBI films. Stage 2
cuts, for every landmark, a PATCH x PATCH crop of the film resized to REF_WIDTH x REF_HEIGHT
(0.3 mm per pixel on ISBI) centred on the stage-1 estimate, and finds the landmark inside it on a
heatmap at half the patch's resolution (0.6 mm cells, sub-pixel decoding). All 19 patches go
through the engine as one batch. Training (training/ceph/train_refine.py) cuts its patches with
these same functions, with random centre offsets like stage-1 errors, rotation and scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.ceph.decode import decode_heatmaps
from pipelines.ceph.preprocess import normalise

# The frame stage 2 works in: the 640 x 800 ISBI training images (aspect stretched, like stage 1).
REF_WIDTH, REF_HEIGHT = 640, 800
PATCH = 64  # +-9.6 mm around the stage-1 estimate on ISBI: 99 % of stage-1 errors are under 5 mm
PATCH_STRIDE = 2  # heatmap cell = 2 patch pixels


def to_ref(gray: np.ndarray) -> np.ndarray:
    """2-D uint8 image of any size -> the stage-2 frame (area averaging when shrinking)."""
    h, w = gray.shape
    if (w, h) == (REF_WIDTH, REF_HEIGHT):
        return gray
    shrink = w * h > REF_WIDTH * REF_HEIGHT
    return cv2.resize(
        gray, (REF_WIDTH, REF_HEIGHT), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def patch_matrix(centre: np.ndarray, angle_deg: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """2x3 affine: frame pixels -> patch pixels (pixel centres at integers), `centre` to the middle.

    angle and scale (patch pixels per frame pixel) are training augmentations; inference uses 0, 1.
    """
    a = np.deg2rad(angle_deg)
    rs = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    mid = (PATCH - 1) / 2.0
    return np.hstack([rs, (mid - rs @ np.asarray(centre, np.float64))[:, None]])


def cut(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """One PATCH x PATCH uint8 crop (zeros outside the film, as in stage-1 training)."""
    return cv2.warpAffine(
        frame, matrix, (PATCH, PATCH), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def patches(frame: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) centres in frame pixels -> model input (K, 1, PATCH, PATCH) float32 and the K matrices.

    Each patch is normalised on its own (zero mean, unit variance): robust to the film's exposure.
    """
    mats = np.stack([patch_matrix(c) for c in centres])
    batch = np.stack([normalise(cut(frame, m))[None] for m in mats]).astype(np.float32)
    return batch, mats


def blend(stage1: np.ndarray, stage2: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Move each stage-1 point towards stage 2's as far as stage 2's own peak (0..1) is certain.

    A patch without a clear landmark (weak peak) leaves stage 1's estimate mostly as it was; on ISBI
    validation this beat taking stage 2 as it is (models/ceph-landmarks-refine/MODEL_CARD.md).
    """
    w = np.clip(confidence, 0.0, 1.0)[:, None]
    return stage1 + w * (stage2 - stage1)


def decode(heatmaps: np.ndarray, mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, K, h, w) heatmaps of K patches, patch k cut for landmark k -> (K, 2) frame pixels, (K,) peaks.

    Patch k's own channel k is read; the others (neighbouring landmarks) only help training.
    """
    k = len(mats)
    own = heatmaps[np.arange(k), np.arange(k)]
    coords, peaks = decode_heatmaps(np.asarray(own, np.float32))
    in_patch = (coords + 0.5) * PATCH_STRIDE - 0.5
    out = np.empty_like(in_patch)
    for i, m in enumerate(mats):
        out[i] = np.linalg.solve(m[:, :2], in_patch[i] - m[:, 2])
    return out, peaks
