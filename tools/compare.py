"""Compare results with a reference: another result folder, a ceph CSV or a pano COCO JSON.

    python -m tools.compare out/ ../shared/data/ceph/isbi2015_640x800/landmarks_val.csv \
        --spacing 0.3023,0.3 --csv-dir report/

ceph: per-landmark radial error in pixels (and mm when the spacing is known), mean radial error
and success rates within 2 / 2.5 / 3 / 4 mm per image. pano: per tooth (FDI) matched / missed /
extra, mask IoU and centroid distance; per image precision, recall and mean IoU.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tools.annotations import AnnotationSet, ImageAnnotation, Point, load

SDR_MM = (2.0, 2.5, 3.0, 4.0)


@dataclass
class Report:
    """Rows for the three tables: per item (landmark/tooth of an image), per image, per id."""

    kind: str
    details: list[dict[str, Any]]
    per_image: list[dict[str, Any]]
    per_item: list[dict[str, Any]]
    unmatched: list[str]  # images present on one side only


def compare(results: AnnotationSet, reference: AnnotationSet, spacing: Point | None = None) -> Report:
    if results.kind != reference.kind:
        raise ValueError(f"cannot compare {results.kind} results with {reference.kind} reference")
    stems = sorted(set(results.images) & set(reference.images))
    unmatched = sorted(set(results.images) ^ set(reference.images))
    if results.kind == "ceph":
        return _compare_ceph(results, reference, stems, unmatched, spacing)
    return _compare_pano(results, reference, stems, unmatched)


def _spacing_for(ann: ImageAnnotation, spacing: Point | None) -> Point | None:
    if spacing:
        return spacing
    if ann.pixel_spacing_mm > 0:
        return ann.pixel_spacing_mm, ann.pixel_spacing_mm
    return None


def _compare_ceph(
    results: AnnotationSet,
    reference: AnnotationSet,
    stems: list[str],
    unmatched: list[str],
    spacing: Point | None,
) -> Report:
    details: list[dict[str, Any]] = []
    per_image: list[dict[str, Any]] = []
    for stem in stems:
        got, ref = results.images[stem], reference.images[stem]
        mm = _spacing_for(got, spacing) or _spacing_for(ref, spacing)
        errors_px, errors_mm = [], []
        for lid, (rx, ry) in ref.landmarks.items():
            if lid not in got.landmarks:
                details.append({"image": stem, "id": lid, "status": "missing"})
                continue
            x, y = got.landmarks[lid]
            err_px = math.hypot(x - rx, y - ry)
            err_mm = math.hypot((x - rx) * mm[0], (y - ry) * mm[1]) if mm else None
            errors_px.append(err_px)
            if err_mm is not None:
                errors_mm.append(err_mm)
            details.append(
                {
                    "image": stem,
                    "id": lid,
                    "status": "ok",
                    "ref_x": rx,
                    "ref_y": ry,
                    "x": x,
                    "y": y,
                    "dx": x - rx,
                    "dy": y - ry,
                    "error_px": err_px,
                    "error_mm": err_mm,
                }  # fmt: skip
            )
        row: dict[str, Any] = {
            "image": stem,
            "landmarks": len(errors_px),
            "mre_px": _mean(errors_px),
            "max_px": max(errors_px, default=None),
            "mre_mm": _mean(errors_mm),
        }
        for t in SDR_MM:
            row[f"sdr_{t:g}mm"] = sum(e <= t for e in errors_mm) / len(errors_mm) if errors_mm else None
        per_image.append(row)
    per_item = _aggregate(details, "id", ("error_px", "error_mm"))
    return Report("ceph", details, per_image, per_item, unmatched)


def _compare_pano(
    results: AnnotationSet, reference: AnnotationSet, stems: list[str], unmatched: list[str]
) -> Report:
    details: list[dict[str, Any]] = []
    per_image: list[dict[str, Any]] = []
    for stem in stems:
        got, ref = results.images[stem], reference.images[stem]
        size = _canvas_size(got, ref)
        tp = fn = fp = 0
        ious: list[float] = []
        for fdi in sorted(set(got.teeth) | set(ref.teeth)):
            row: dict[str, Any] = {"image": stem, "id": fdi}
            if fdi in got.teeth and fdi in ref.teeth:
                tp += 1
                iou = mask_iou(got.teeth[fdi], ref.teeth[fdi], size)
                ious.append(iou)
                (gx, gy), (rx, ry) = _centroid(got.teeth[fdi]), _centroid(ref.teeth[fdi])
                row.update(status="matched", iou=iou, centroid_px=math.hypot(gx - rx, gy - ry))
            elif fdi in ref.teeth:
                fn += 1
                row.update(status="missed")
            else:
                fp += 1
                row.update(status="extra")
            details.append(row)
        per_image.append(
            {
                "image": stem,
                "matched": tp,
                "missed": fn,
                "extra": fp,
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / (tp + fn) if tp + fn else None,
                "mean_iou": _mean(ious),
            }  # fmt: skip
        )
    per_item = _aggregate(details, "id", ("iou", "centroid_px"))
    for item in per_item:
        rows = [d for d in details if d["id"] == item["id"]]
        item["found"] = sum(d["status"] == "matched" for d in rows)
        item["missed"] = sum(d["status"] == "missed" for d in rows)
        item["extra"] = sum(d["status"] == "extra" for d in rows)
    return Report("pano", details, per_image, per_item, unmatched)


def mask_iou(a: Sequence[Point], b: Sequence[Point], size: tuple[int, int]) -> float:
    """IoU of two polygons rasterised on a (width, height) canvas."""
    width, height = size
    masks = []
    for poly in (a, b):
        mask = np.zeros((height, width), dtype=np.uint8)
        if len(poly) >= 3:
            cv2.fillPoly(mask, [np.round(np.asarray(poly)).astype(np.int32)], 1)
        masks.append(mask.astype(bool))
    union = np.logical_or(*masks).sum()
    return float(np.logical_and(*masks).sum() / union) if union else 0.0


def _canvas_size(*anns: ImageAnnotation) -> tuple[int, int]:
    for ann in anns:
        if ann.width > 0 and ann.height > 0:
            return ann.width, ann.height
    points = [p for ann in anns for poly in ann.teeth.values() for p in poly] or [(1.0, 1.0)]
    return int(max(p[0] for p in points)) + 2, int(max(p[1] for p in points)) + 2


def _centroid(poly: Sequence[Point]) -> Point:
    arr = np.asarray(poly, dtype=np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean())


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _aggregate(details: list[dict[str, Any]], key: str, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in details:
        groups[row[key]].append(row)
    out = []
    for item_id, rows in groups.items():
        agg: dict[str, Any] = {key: item_id, "n": len(rows)}
        for m in metrics:
            values = [r[m] for r in rows if r.get(m) is not None]
            agg[f"mean_{m}"] = _mean(values)
            agg[f"max_{m}"] = max(values, default=None)
        out.append(agg)
    return out


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """A plain-text table; floats with 3 decimals, missing values as '-'."""
    if not rows:
        return f"{title}\n(none)\n" if title else "(none)\n"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_csvs(report: Report, folder: Path) -> list[Path]:
    """details.csv, per_image.csv and per_item.csv under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (
        ("details", report.details),
        ("per_image", report.per_image),
        ("per_item", report.per_item),
    ):
        path = folder / f"{name}.csv"
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written


def _parse_spacing(text: str) -> Point:
    parts = [float(p) for p in text.split(",")]
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError("spacing is MM or X_MM,Y_MM, both > 0")
    return parts[0], parts[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="folder of <stem>.json results")
    parser.add_argument("reference", type=Path, help="result folder, ceph landmark CSV or pano COCO JSON")
    parser.add_argument(
        "--annotator", default="mean", help="ceph CSV annotator to compare with (default: mean)"
    )
    parser.add_argument(
        "--spacing", type=_parse_spacing, help="mm per pixel, MM or X,Y (default: from results)"
    )
    parser.add_argument("--csv-dir", type=Path, help="write details.csv, per_image.csv and per_item.csv here")
    args = parser.parse_args(argv)
    try:
        report = compare(load(args.results), load(args.reference, args.annotator), args.spacing)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    item = "landmark" if report.kind == "ceph" else "tooth (FDI)"
    print(format_table(report.per_image, "per image"))
    print(format_table(report.per_item, f"per {item}"))
    if report.unmatched:
        print(f"{len(report.unmatched)} image(s) on one side only: {', '.join(report.unmatched[:20])}")
    if args.csv_dir:
        for path in write_csvs(report, args.csv_dir):
            print(f"wrote {path}")
    return 0 if report.per_image else 1


if __name__ == "__main__":
    sys.exit(main())
