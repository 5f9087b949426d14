"""Readers for what `tools.compare` compares: result folders and the shared/data annotation files.

Everything is read into one shape per image, so results and annotations compare the same way:
ceph -> {landmark id: (x, y)}, pano -> {FDI number: polygon [(x, y), ...]}.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dentalai.overlay import result_dict, result_kind

# The 19 ISBI-2015 landmarks in their order: contract ids and the shared/data CSV column names.
CEPH_LANDMARKS: tuple[tuple[str, str], ...] = (
    ("S", "sella"),
    ("N", "nasion"),
    ("Or", "orbitale"),
    ("Po", "porion"),
    ("A", "subspinale"),
    ("B", "supramentale"),
    ("Pog", "pogonion"),
    ("Me", "menton"),
    ("Gn", "gnathion"),
    ("Go", "gonion"),
    ("LIT", "lower_incisal_incision"),
    ("UIT", "upper_incisal_incision"),
    ("UL", "upper_lip"),
    ("LL", "lower_lip"),
    ("Sn", "subnasale"),
    ("SoftPog", "soft_tissue_pogonion"),
    ("PNS", "posterior_nasal_spine"),
    ("ANS", "anterior_nasal_spine"),
    ("Ar", "articulare"),
)

Point = tuple[float, float]


@dataclass
class ImageAnnotation:
    """One image's landmarks (ceph) or tooth outlines (pano), with its size when known."""

    landmarks: dict[str, Point] = field(default_factory=dict)
    teeth: dict[int, list[Point]] = field(default_factory=dict)
    width: int = 0
    height: int = 0
    pixel_spacing_mm: float = 0.0


@dataclass
class AnnotationSet:
    kind: str  # "ceph" or "pano"
    images: dict[str, ImageAnnotation]
    source: str


def load(path: Path, annotator: str = "mean") -> AnnotationSet:
    """A result folder, a ceph landmark CSV or a pano COCO JSON, by what `path` is."""
    if path.is_dir():
        return load_results(path)
    if path.suffix.lower() == ".csv":
        return load_ceph_csv(path, annotator)
    if path.suffix.lower() == ".json":
        return load_coco(path)
    raise ValueError(f"{path}: expected a result folder, a ceph .csv or a pano COCO .json")


def load_results(folder: Path) -> AnnotationSet:
    """Every `<stem>.json` result in `folder` (result `data`, a Task, or an envelope)."""
    images: dict[str, ImageAnnotation] = {}
    kinds: set[str] = set()
    for file in sorted(folder.glob("*.json")):
        try:
            data = result_dict(json.loads(file.read_text()))
            kind = result_kind(data)
        except (ValueError, json.JSONDecodeError):
            continue  # not a result (e.g. a summary file written beside them)
        kinds.add(kind)
        images[file.stem] = from_result(data)
    if len(kinds) > 1:
        raise ValueError(f"{folder}: mixes ceph and pano results")
    if not kinds:
        raise ValueError(f"{folder}: no result JSON files")
    return AnnotationSet(kinds.pop(), images, str(folder))


def from_result(data: dict[str, Any]) -> ImageAnnotation:
    image = data.get("image") or {}
    ann = ImageAnnotation(
        width=int(image.get("width") or 0),
        height=int(image.get("height") or 0),
        pixel_spacing_mm=float(image.get("pixelSpacingMm") or 0.0),
    )
    for lm in data.get("landmarks") or []:
        ann.landmarks[str(lm["id"])] = (float(lm.get("x", 0.0)), float(lm.get("y", 0.0)))
    for tooth in data.get("teeth") or []:
        polygon = [(float(p[0]), float(p[1])) for p in tooth.get("polygon") or []]
        if len(polygon) < 3 and len(tooth.get("bbox") or []) == 4:
            x, y, w, h = (float(v) for v in tooth["bbox"])
            polygon = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        ann.teeth[int(tooth["fdi"])] = polygon
    return ann


def load_ceph_csv(path: Path, annotator: str = "mean") -> AnnotationSet:
    """shared/data ceph CSV (`image, annotator, <name>_x, <name>_y, ...`); `annotator` picks one
    annotator's row, or "mean" averages all annotators of an image (the usual ground truth)."""
    rows_by_image: dict[str, list[dict[str, str]]] = defaultdict(list)
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if annotator in ("mean", row.get("annotator", "")):
                rows_by_image[Path(row["image"]).stem].append(row)
    if not rows_by_image:
        raise ValueError(f"{path}: no rows for annotator {annotator!r}")
    images = {}
    for stem, rows in rows_by_image.items():
        ann = ImageAnnotation()
        for lid, col in CEPH_LANDMARKS:
            xs = [float(r[f"{col}_x"]) for r in rows if r.get(f"{col}_x")]
            ys = [float(r[f"{col}_y"]) for r in rows if r.get(f"{col}_y")]
            if xs and ys:
                ann.landmarks[lid] = (sum(xs) / len(xs), sum(ys) / len(ys))
        images[stem] = ann
    return AnnotationSet("ceph", images, f"{path} ({annotator})")


def load_coco(path: Path) -> AnnotationSet:
    """shared/data pano COCO JSON: one polygon per tooth, `category_id` = FDI number."""
    coco = json.loads(path.read_text())
    images: dict[int, tuple[str, ImageAnnotation]] = {}
    for img in coco.get("images", []):
        ann = ImageAnnotation(width=int(img.get("width") or 0), height=int(img.get("height") or 0))
        images[int(img["id"])] = (Path(img["file_name"]).stem, ann)
    for a in coco.get("annotations", []):
        if int(a["image_id"]) not in images:
            continue
        segmentation = a.get("segmentation") or []
        if segmentation and isinstance(segmentation, list):
            # Several parts: keep the largest, as the service reports one outline per tooth.
            flat = max(segmentation, key=len)
            polygon = [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]
        else:
            x, y, w, h = (float(v) for v in a["bbox"])
            polygon = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        images[int(a["image_id"])][1].teeth[int(a["category_id"])] = polygon
    return AnnotationSet("pano", dict(images.values()), str(path))
