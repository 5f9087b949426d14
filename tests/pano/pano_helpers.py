"""Shared helpers of the pano tests: a synthetic dentition and a fake engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.manifest import ModelManifest, TensorSpec
from pipelines.pano.numbering import CLASS_FDI, PERMANENT_FDI, is_primary, side_quadrant
from pipelines.pano.pipeline import MIRROR_CHANNELS

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "pano-teeth"
H, W = 256, 512


@dataclass
class Cand:
    label: int
    probs: np.ndarray
    cx: float
    cy: float
    bounds: tuple[int, int, int, int]


# Width of a synthetic tooth's box: neighbours 24 px apart overlap a little, as real ones do.
TOOTH_WIDTH = 26


def position(fdi: int) -> tuple[float, float]:
    """Model-frame centre of a tooth in a tidy synthetic dentition (patient's right on image left).
    Primary teeth sit in their own rows (y 50 and 210), clear of the permanent rows (100 and 160),
    so that a primary tooth and its successor never share pixels."""
    q, t = side_quadrant(fdi), fdi % 10
    dx = 12 + 24 * (t - 1)
    x = W / 2 - dx if q in (1, 4) else W / 2 + dx
    upper = q in (1, 2)
    if is_primary(fdi):
        return x, 50.0 if upper else 210.0
    return x, 100.0 if upper else 160.0


def cand(fdi_at: int, label_fdi: int, confidence: float = 0.9, second: int | None = None) -> Cand:
    """A candidate sitting where `fdi_at` belongs, labelled `label_fdi` by the 'model'."""
    probs = np.full(len(CLASS_FDI), (1 - confidence) / (len(CLASS_FDI) + 1), np.float64)
    probs[CLASS_FDI.index(label_fdi)] = confidence
    if second is not None:
        probs[CLASS_FDI.index(second)] += 0.3 * (1 - confidence) + 0.05
    probs /= probs.sum()
    x, y = position(fdi_at)
    half = TOOTH_WIDTH // 2
    bounds = (int(x) - half, int(y) - 20, int(x) + half, int(y) + 20)
    return Cand(label=CLASS_FDI.index(label_fdi), probs=probs, cx=x, cy=y, bounds=bounds)


def full_mouth() -> list[Cand]:
    return [cand(f, f) for f in PERMANENT_FDI]


def manifest(h: int = H, w: int = W, channels: int = len(CLASS_FDI)) -> ModelManifest:
    return ModelManifest(
        name="pano-teeth", version="test", task_type="pano", directory=Path("."), onnx="none.onnx",
        sha256="", inputs=(TensorSpec("image", "float32", ("batch", 1, h, w)),),
        outputs=(TensorSpec("logits", "float32", ("batch", channels, h, w)),),
    )


def synthetic_logits(teeth: list[int]) -> np.ndarray:
    """Logits with one 16x40 rectangle per listed FDI tooth at its synthetic position."""
    logits = np.zeros((len(CLASS_FDI), H, W), np.float32)
    logits[0] = 5.0
    for fdi in teeth:
        x, y = position(fdi)
        ys, xs = slice(int(y) - 20, int(y) + 20), slice(int(x) - 8, int(x) + 8)
        logits[0, ys, xs] = -5.0
        logits[CLASS_FDI.index(fdi), ys, xs] = 8.0
    return logits


class FakeEngine:
    """Returns fixed logits, whatever the image; records what it was given."""

    runtime = "fake"

    def __init__(self, logits: np.ndarray) -> None:
        self.manifest = manifest(channels=len(logits))
        self.logits = logits
        self.seen: list[np.ndarray] = []

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = inputs["image"]
        self.seen.append(batch)
        # What a mirror-consistent model gives for a mirrored input: mirrored image, swapped sides.
        mirrored = self.logits[MIRROR_CHANNELS[: len(self.logits)], :, ::-1]
        return {"logits": np.stack([self.logits, mirrored][: len(batch)])}

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        pass
