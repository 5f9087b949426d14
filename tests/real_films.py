"""Real radiographs from ../shared/data (see its README) with their annotations, for the tests that
run the shipped models through the service: a result there must be one that only working models
give. `require()` skips a test with a clear reason when the data is absent (a newcomer's machine;
in CI the data is present, and tests/skip_policy.py turns such a skip into a failure).

- ceph: ISBI 2015 validation image 166 at 640 x 800 px (never trained on: models/ceph-landmarks'
  card), one pixel 0.3023 mm in x and 0.3 mm in y; the ground truth is the mean of the senior and
  junior annotators (`landmarks_val.csv`, 19 landmarks in the ISBI order, pixels of this image).
  The shipped models are within 1.9 mm of it on every landmark (MRE 0.84 mm).
- pano: Tufts Dental Database film 72 (1615 x 840, validation split of training/pano/
  split_tufts.json): a partly edentulous adult with 14 annotated teeth, so a model that "finds" a
  full dentition anywhere fails the count.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CEPH_DIR = DATA / "ceph" / "isbi2015_640x800"
CEPH_FILM = CEPH_DIR / "images" / "166.png"
CEPH_SPACING_MM = (0.3023, 0.3)  # x, y
CEPH_LANDMARK_IDS = (
    "S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go",
    "LIT", "UIT", "UL", "LL", "Sn", "SoftPog", "PNS", "ANS", "Ar",
)  # fmt: skip
PANO_DIR = DATA / "pano" / "tufts"
PANO_FILM = PANO_DIR / "images" / "72.jpg"
PANO_SIZE = (1615, 840)


def require(*paths: Path) -> None:
    """Skip (with the reason) unless every path exists."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"../shared/data is absent here: {', '.join(str(p) for p in missing)}")


def ceph_truth() -> np.ndarray:
    """(19, 2) pixels of CEPH_FILM: the mean of the two annotators."""
    with (CEPH_DIR / "landmarks_val.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["image"] == CEPH_FILM.stem]
    assert {r["annotator"] for r in rows} == {"senior", "junior"}, rows
    values = [[float(v) for k, v in r.items() if k not in ("image", "annotator")] for r in rows]
    return np.mean(values, axis=0).reshape(-1, 2)


def ceph_errors_mm(landmarks: list[dict]) -> dict[str, float]:
    """Radial error in mm of each landmark of a result (proto3 JSON) against the annotation."""
    assert [lm["id"] for lm in landmarks] == list(CEPH_LANDMARK_IDS)
    predicted = np.array([[lm["x"], lm["y"]] for lm in landmarks], dtype=float)
    delta = (predicted - ceph_truth()) * np.array(CEPH_SPACING_MM)
    return dict(zip(CEPH_LANDMARK_IDS, np.hypot(delta[:, 0], delta[:, 1]).round(2).tolist(), strict=True))


def pano_truth() -> set[int]:
    """FDI numbers of the teeth annotated on PANO_FILM."""
    coco = json.loads((PANO_DIR / "annotations.json").read_text())
    (image,) = [im for im in coco["images"] if im["file_name"] == PANO_FILM.name]
    return {a["category_id"] for a in coco["annotations"] if a["image_id"] == image["id"]}
