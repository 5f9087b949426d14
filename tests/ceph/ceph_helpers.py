"""Shared helpers of the ceph tests: a hand-made skull with known geometry and a fake engine."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engines.manifest import ModelManifest, TensorSpec
from pipelines.ceph.preprocess import INPUT_HEIGHT, INPUT_WIDTH, LANDMARK_IDS

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "ceph-landmarks"
HM_H, HM_W = INPUT_HEIGHT // 2, INPUT_WIDTH // 2


def polar(origin: tuple[float, float], length: float, deg_below_forward: float) -> np.ndarray:
    """Point at `length` from origin, `deg` below the +x axis (image y points down)."""
    r = math.radians(deg_below_forward)
    return np.array([origin[0] + length * math.cos(r), origin[1] + length * math.sin(r)])


def skull() -> dict[str, np.ndarray]:
    """A right-facing skull in mm (spacing 1) with round numbers.

    SN and FH horizontal; SNA 82, SNB 78 (ANB 4); mandibular plane Go-Me 25 deg below FH;
    Go-Gn 30 deg below SN; palatal plane horizontal; incisal tips level, UIT 3 mm ahead of LIT.
    """
    S, N = np.array([0.0, 0.0]), np.array([70.0, 0.0])
    p = {
        "S": S,
        "N": N,
        "Or": np.array([60.0, 25.0]),
        "Po": np.array([-10.0, 25.0]),
        "A": polar((70, 0), 50, 180 - 82),
        "B": polar((70, 0), 85, 180 - 78),
        "Go": np.array([0.0, 80.0]),
    }
    p["Me"] = polar((0, 80), 70, 25)
    p["Gn"] = polar((0, 80), 74, 30)
    p["Pog"] = p["Gn"] + [2.0, -6.0]
    p["UIT"] = np.array([68.0, 70.0])
    p["LIT"] = np.array([65.0, 70.0])
    p["PNS"], p["ANS"] = np.array([20.0, 40.0]), np.array([72.0, 40.0])
    p["UL"], p["LL"] = np.array([80.0, 65.0]), np.array([78.0, 80.0])
    p["Sn"], p["SoftPog"] = np.array([82.0, 45.0]), np.array([70.0, 120.0])
    p["Ar"] = np.array([-5.0, 35.0])
    return p


def skull_array(p: dict[str, np.ndarray] | None = None) -> np.ndarray:
    p = p or skull()
    return np.stack([p[k] for k in LANDMARK_IDS])


def manifest() -> ModelManifest:
    return ModelManifest(
        name="ceph-landmarks",
        version="test",
        task_type="ceph",
        directory=Path("."),
        onnx="none.onnx",
        sha256="",
        inputs=(TensorSpec("image", "float32", ("batch", 1, INPUT_HEIGHT, INPUT_WIDTH)),),
        outputs=(TensorSpec("heatmaps", "float32", ("batch", len(LANDMARK_IDS), HM_H, HM_W)),),
    )


def gaussians(points_hm: np.ndarray, peak: float) -> np.ndarray:
    ys, xs = np.mgrid[0:HM_H, 0:HM_W].astype(np.float32)
    d2 = (xs[None] - points_hm[:, 0, None, None]) ** 2 + (ys[None] - points_hm[:, 1, None, None]) ** 2
    return (peak * np.exp(-d2 / 8.0)).astype(np.float32)


class FakeEngine:
    """A 'model' that sees a face only when the bright marker is in the image's left half.

    It then answers strong Gaussians at `points_hm` (heatmap pixels); otherwise weak ones at the
    same places, so the pipeline has to pick the view by confidence.
    """

    runtime = "fake"

    def __init__(self, points_hm: np.ndarray, strong: float = 0.9, weak: float = 0.1) -> None:
        self.manifest = manifest()
        self.points_hm = points_hm
        self.strong, self.weak = strong, weak

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = inputs["image"]
        out = []
        for img in batch:
            half = img.shape[-1] // 2
            left = img[0, :, :half].mean() > img[0, :, half:].mean()
            out.append(gaussians(self.points_hm, self.strong if left else self.weak))
        return {"heatmaps": np.stack(out)}

    def warmup(self) -> None: ...

    def close(self) -> None: ...


def marked_image(width: int = 1000, height: int = 1250, marker_left: bool = True) -> np.ndarray:
    """Noise with a bright block on one side: what the fake engine takes for a face looking right."""
    rng = np.random.default_rng(0)
    img = rng.integers(20, 80, (height, width), dtype=np.uint8)
    xs = slice(0, width // 3) if marker_left else slice(width - width // 3, width)
    img[height // 4 : height // 2, xs] = 230
    return img
