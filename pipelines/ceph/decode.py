"""Heatmaps -> sub-pixel landmark positions and confidences (numpy only).

The model is trained on Gaussian targets with peak 1, so the peak value is a usable confidence.
Sub-pixel position: a parabola through the log of the three values around the peak on each axis
(exact for a Gaussian), which removes most of the heatmap's quantisation error.
"""

from __future__ import annotations

import numpy as np


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, h, w) -> (K, 2) x, y in heatmap pixels (centres at integers) and (K,) peak values."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    peaks = flat[np.arange(k), idx]
    ys, xs = np.divmod(idx, w)
    coords = np.stack([xs, ys], axis=1).astype(np.float64)
    for i in range(k):
        hm = heatmaps[i]
        x, y = int(xs[i]), int(ys[i])
        if 0 < x < w - 1:
            coords[i, 0] += _parabola(hm[y, x - 1], hm[y, x], hm[y, x + 1])
        if 0 < y < h - 1:
            coords[i, 1] += _parabola(hm[y - 1, x], hm[y, x], hm[y + 1, x])
    return coords, peaks.astype(np.float64)


def _parabola(left: float, mid: float, right: float) -> float:
    """Offset of the vertex of a parabola through the logs of three samples, clamped to half a pixel."""
    eps = 1e-4
    lm, mm, rm = (np.log(max(float(v), eps)) for v in (left, mid, right))
    denom = lm - 2 * mm + rm
    if denom >= -1e-9:
        return 0.0
    return float(np.clip(0.5 * (lm - rm) / denom, -0.5, 0.5))


def heatmap_to_image(coords: np.ndarray, stride: float, scale_x: float, scale_y: float) -> np.ndarray:
    """Heatmap pixels -> image pixels (pixel centres at integers); scale = image size / model input size."""
    model = (coords + 0.5) * stride - 0.5
    out = np.empty_like(model)
    out[:, 0] = (model[:, 0] + 0.5) * scale_x - 0.5
    out[:, 1] = (model[:, 1] + 0.5) * scale_y - 0.5
    return out
