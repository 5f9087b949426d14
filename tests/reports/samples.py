"""Results with known content on images of the real sizes (1935 x 2400 ceph, 2943 x 1435 pano),
built without a model: for the artifact tests, the bench and a look by eye. The ceph uses the
ISBI full-resolution annotation of image 100 when ../shared/data is present, else the
hand-made skull geometry; the pano has 30 teeth (two missing) drawn as ellipses, and findings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dentalai.task_json import message_dict
from dentalai.v1 import results_pb2
from pipelines.ceph.pipeline import CephPrediction
from pipelines.ceph.pipeline import build_result as build_ceph
from pipelines.ceph.preprocess import LANDMARK_IDS

CEPH_SIZE = (1935, 2400)  # width, height
PANO_SIZE = (2943, 1435)
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FULLRES = DATA / "ceph" / "isbi2015_fullres"

# A right-facing skull in mm (S at the origin), the ceph tests' geometry in round numbers.
_SKULL_MM = {
    "S": (0, 0),
    "N": (70, 0),
    "Or": (60, 25),
    "Po": (-10, 25),
    "A": (62.6, 49.5),
    "B": (52.3, 84.1),
    "Pog": (68.9, 111.0),
    "Me": (63.4, 109.6),
    "Gn": (64.1, 117.0),
    "Go": (0, 80),
    "LIT": (65, 70),
    "UIT": (68, 70),
    "UL": (80, 65),
    "LL": (78, 80),
    "Sn": (82, 45),
    "SoftPog": (70, 120),
    "PNS": (20, 40),
    "ANS": (72, 40),
    "Ar": (-5, 35),
}


def ceph_points() -> np.ndarray:
    """(19, 2) landmark pixels on a 1935 x 2400 image at 0.1 mm/px."""
    csv = FULLRES / "landmarks.csv"
    if csv.exists():
        import csv as csvlib

        rows = [r for r in csvlib.DictReader(csv.open()) if r["image"].split(".")[0] == "100"]
        if rows:
            cols = list(rows[0])[2:]  # <landmark>_x, <landmark>_y in ISBI order
            xy = np.array([[float(r[c]) for c in cols] for r in rows]).mean(axis=0)
            return xy.reshape(-1, 2)[: len(LANDMARK_IDS)]
    origin = np.array([700.0, 800.0])
    return np.array([origin + np.array(_SKULL_MM[k], dtype=float) * 10 for k in LANDMARK_IDS])


def ceph_image() -> np.ndarray:
    """The ISBI image 100 when present, else a gray gradient of the same size (uint8)."""
    path = FULLRES / "images" / "100.png"
    if path.exists():
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is not None and img.shape[::-1] == CEPH_SIZE:
            return img
    w, h = CEPH_SIZE
    return np.tile(np.linspace(40, 200, w, dtype=np.uint8), (h, 1))


def ceph_result() -> results_pb2.CephResult:
    points = ceph_points()
    conf = np.linspace(0.95, 0.2, len(points))  # one landmark under the 0.3 "low" line
    return build_ceph(CephPrediction(points, conf, 1, conf), *CEPH_SIZE, 0.1, "request")


def pano_image() -> np.ndarray:
    w, h = PANO_SIZE
    y, x = np.mgrid[0:h, 0:w]
    return (90 + 60 * np.sin(x / 300.0) * np.cos(y / 200.0)).astype(np.uint8)


def _tooth_centre(fdi: int) -> tuple[float, float]:
    q, t = divmod(fdi, 10)
    w, h = PANO_SIZE
    side = -1 if q in (1, 4) else 1  # patient's right on the image's left
    x = w / 2 + side * (60 + (t - 1) * 130)
    y = h / 2 + (-220 if q in (1, 2) else 220) + 8 * (t - 1) * (1 if q in (1, 2) else -1)
    return x, y


def pano_result(missing: tuple[int, ...] = (18, 38)) -> dict[str, Any]:
    """Proto3 JSON of a PanoResult with one caries finding on tooth 36."""
    result = results_pb2.PanoResult(
        image=results_pb2.PanoImage(width=PANO_SIZE[0], height=PANO_SIZE[1]), numbering=results_pb2.FDI
    )
    for q in (1, 2, 3, 4):
        for t in range(1, 9):
            fdi = 10 * q + t
            if fdi in missing:
                continue
            cx, cy = _tooth_centre(fdi)
            poly = [
                [round(cx + 50 * math.cos(a), 1), round(cy + 160 * math.sin(a), 1)]
                for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)
            ]
            tooth = result.teeth.add(
                fdi=fdi,
                number=fdi,
                score=round(0.99 - t * 0.01, 3),
                bbox=[cx - 50, cy - 160, 100, 320],
                area_px=round(math.pi * 50 * 160, 1),
            )
            tooth.polygon.extend(poly)
    result.missing_teeth.extend(sorted(missing))
    result.summary.tooth_count = len(result.teeth)
    cx, cy = _tooth_centre(36)
    finding = result.findings.add(
        type="caries", fdi=36, number=36, score=0.81, bbox=[cx - 20, cy - 30, 40, 40], area_px=1600.0,
        area_mm2=16.0,
    )
    finding.polygon.extend([[cx - 20, cy - 30], [cx + 20, cy - 30], [cx + 20, cy + 10], [cx - 20, cy + 10]])
    next(t for t in result.teeth if t.fdi == 36).findings.append("caries")
    result.image.pixel_spacing_mm = 0.1
    result.image.spacing_source = "request"
    return message_dict(result)
