"""Cephalogram loading (ISBI 2015 at 640x800, optionally Hamedan) and on-the-fly affine augmentation.

Everything is preloaded in RAM at 384x480 (area-downscaled once) as uint8; each sample is one
warpAffine to the model input, so augmentation costs about a millisecond.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipelines.ceph.preprocess import HEATMAP_STRIDE, INPUT_HEIGHT, INPUT_WIDTH, normalise, to_gray_u8

# Checkpoints and logs of the ceph trainers (git-ignored).
RUNS = Path(__file__).resolve().parent / "runs"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ceph"
CACHE_W, CACHE_H = 384, 480


@dataclass
class Sample:
    image: np.ndarray  # (CACHE_H, CACHE_W) uint8
    points: np.ndarray  # (19, 2) in cache pixels, centres at integers
    name: str


def read_csv_mean(path: Path) -> dict[str, np.ndarray]:
    """image id -> (19, 2) mean over annotators, in the CSV's pixels."""
    rows: dict[str, list[np.ndarray]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            vals = [float(v) for k, v in row.items() if k not in ("image", "annotator")]
            rows.setdefault(row["image"], []).append(np.asarray(vals).reshape(-1, 2))
    return {k: np.mean(v, axis=0) for k, v in rows.items()}


def _load(
    img_dir: Path, labels: dict[str, np.ndarray], tag: str, size: tuple[int, int] = (CACHE_W, CACHE_H)
) -> list[Sample]:
    """Images resized to `size` (W, H) with their points in those pixels."""
    out = []
    for name, pts in sorted(labels.items()):
        files = list(img_dir.glob(f"{name}.*"))
        if not files:
            continue
        img = to_gray_u8(cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED))
        h, w = img.shape
        small = img if (w, h) == size else cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        p = (pts + 0.5) * [size[0] / w, size[1] / h] - 0.5
        out.append(Sample(small, p.astype(np.float32), f"{tag}/{name}"))
    return out


def load_isbi(split: str, size: tuple[int, int] = (CACHE_W, CACHE_H)) -> list[Sample]:
    d = DATA / "isbi2015_640x800"
    return _load(d / "images", read_csv_mean(d / f"landmarks_{split}.csv"), "isbi", size)


# Hamedan images from this id on are never trained on: they are the cross-site evaluation set.
HAMEDAN_HOLDOUT_FROM = 71


def load_hamedan(train: bool = True, size: tuple[int, int] = (CACHE_W, CACHE_H)) -> list[Sample]:
    d = DATA / "hamedan"
    labels = read_csv_mean(d / "landmarks.csv")
    keep = {k: v for k, v in labels.items() if (int(k) < HAMEDAN_HOLDOUT_FROM) == train}
    return _load(d / "images", keep, "hamedan", size)


def _affine(rng: np.random.Generator | None) -> np.ndarray:
    """2x3 matrix cache pixels -> model pixels (centre convention), random if rng is given."""
    sx, sy = INPUT_WIDTH / CACHE_W, INPUT_HEIGHT / CACHE_H
    ang, s, ax, tx, ty = 0.0, 1.0, 1.0, 0.0, 0.0
    if rng is not None:
        ang = np.deg2rad(rng.uniform(-10, 10))
        s = rng.uniform(0.9, 1.1)
        ax = rng.uniform(0.96, 1.04)
        tx, ty = rng.uniform(-0.06, 0.06) * INPUT_WIDTH, rng.uniform(-0.06, 0.06) * INPUT_HEIGHT
    c, si = np.cos(ang) * s, np.sin(ang) * s
    # Corner convention: scale to model size, then rotate/scale about the centre, then shift.
    cx, cy = INPUT_WIDTH / 2, INPUT_HEIGHT / 2
    rot = np.array(
        [
            [c * ax, -si, cx - c * ax * cx + si * cy + tx],
            [si * ax, c, cy - si * ax * cx - c * cy + ty],
            [0, 0, 1],
        ]
    )
    m = rot @ np.diag([sx, sy, 1.0])
    # Centre convention used by warpAffine: x_c = M (x + 0.5) - 0.5.
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
    return (unshift @ m @ shift)[:2]


def intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 image -> float32 0..255 with another device's look: local contrast (CLAHE), gamma,
    gain/offset, blur or sharpening, noise."""
    if rng.random() < 0.3:
        tiles = int(rng.integers(2, 9))
        clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.0, 3.0)), tileGridSize=(tiles, tiles))
        img = clahe.apply(img)
    x = img.astype(np.float32) / 255.0
    x = np.power(x, rng.uniform(0.7, 1.5))
    x = x * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    r = rng.random()
    if r < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.2))
    elif r < 0.45:  # unsharp masking, as some detectors' software applies
        x = x + rng.uniform(0.3, 1.0) * (x - cv2.GaussianBlur(x, (0, 0), rng.uniform(1.0, 2.5)))
    x = x + rng.normal(0, rng.uniform(0, 0.03), x.shape).astype(np.float32)
    return np.clip(x, 0, 1) * 255.0


def heatmap_targets(
    points: np.ndarray,
    sigma: float,
    size: tuple[int, int] = (INPUT_WIDTH, INPUT_HEIGHT),
    stride: int = HEATMAP_STRIDE,
) -> np.ndarray:
    """(19, 2) points in an input of `size` (W, H) -> (19, h, w) Gaussians with peak 1 at heatmap
    resolution (input / stride)."""
    h, w = size[1] // stride, size[0] // stride
    p = (points + 0.5) / stride - 0.5
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    d2 = (xs - p[:, 0, None, None]) ** 2 + (ys - p[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


def make_sample(s: Sample, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """-> model input (1, H, W) float32 and landmark points in model pixels (19, 2)."""
    m = _affine(rng)
    img = cv2.warpAffine(
        s.image,
        m,
        (INPUT_WIDTH, INPUT_HEIGHT),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    pts = s.points @ m[:, :2].T + m[:, 2]
    x = intensity(img, rng) if rng is not None else img.astype(np.float32)
    return normalise(x)[None], pts.astype(np.float32)
