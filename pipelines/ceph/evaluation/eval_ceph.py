"""Evaluate the ceph pipeline (through the ONNX engine) on a folder in the shared/data CSV format.

    .venv/bin/python -m pipelines.ceph.evaluation.eval_ceph \
        --csv ../shared/data/ceph/isbi2015_640x800/landmarks_val.csv \
        --images ../shared/data/ceph/isbi2015_640x800/images \
        --spacing-x 0.3023 --spacing-y 0.3 --out /tmp/ceph_eval_isbi_val.json

Ground truth is the mean of the CSV's annotators; their mutual disagreement on the same images is
reported as a reference. Errors are radial, in mm with per-axis spacing (x and y may differ).
Classes (the eight ISBI ones) are computed the same way from predicted and from ground-truth
landmarks, in mm coordinates, and compared. `--mirror` flips each image (and its ground truth)
to check the orientation handling. Hamedan (spacing not published; 0.11 mm/px assumed) held-out
images only: `--id-range 71 100` (001-070 are in the training data).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np

from dentalai.v1 import task_pb2
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.ceph import measurements as meas
from pipelines.ceph import summary as ceph_summary
from pipelines.ceph.pipeline import CephPipeline
from pipelines.ceph.preprocess import LANDMARK_IDS

ROOT = Path(__file__).resolve().parents[3]
RADII_MM = (2.0, 2.5, 3.0, 4.0)
CLASS_IDS = ("ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FMA", "MW", "summary-skeletal", "summary-vertical")


def read_annotations(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """image id -> annotator -> (19, 2) pixels."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            vals = [float(v) for k, v in row.items() if k not in ("image", "annotator")]
            out.setdefault(row["image"], {})[row["annotator"]] = np.asarray(vals).reshape(-1, 2)
    return out


def radial_mm(a: np.ndarray, b: np.ndarray, sx: float, sy: float) -> np.ndarray:
    d = (a - b) * [sx, sy]
    return np.hypot(d[:, 0], d[:, 1])


def class_ids(points_px: np.ndarray, sx: float, sy: float) -> dict[str, int | str]:
    """ISBI classes, and the summary's two verdicts, from landmarks converted to mm (so anisotropic
    pixels do not bend angles)."""
    mm = points_px * [sx, sy]
    facing = 1 if mm[1, 0] >= mm[0, 0] else -1  # nasion ahead of sella
    values = meas.raw_values(meas.canonical(mm, facing), 1.0)
    out: dict[str, int | str] = {c.id: c.category for c in meas.classifications_from_values(values)}
    out["summary-skeletal"] = ceph_summary.skeletal_class(values).label
    out["summary-vertical"] = ceph_summary.vertical_pattern(values).label
    return out


def stats(err: np.ndarray) -> dict[str, float]:
    """err: (..., ) mm -> MRE, SD and SDR at the standard radii (percent)."""
    e = err.ravel()
    out = {"mre_mm": float(e.mean()), "sd_mm": float(e.std())}
    for r in RADII_MM:
        out[f"sdr_{r}mm"] = float(100 * (e <= r).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--spacing-x", type=float, required=True, help="mm per pixel along x")
    ap.add_argument("--spacing-y", type=float, required=True, help="mm per pixel along y")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "ceph-landmarks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mirror", action="store_true", help="flip images left-right (orientation check)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument(
        "--id-range",
        type=int,
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="only numeric image ids in this range",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sx, sy = args.spacing_x, args.spacing_y

    engine = OnnxRuntimeEngine(ModelManifest.load(args.model_dir), intra_threads=args.threads)
    pipeline = CephPipeline(engine)
    ann = read_annotations(args.csv)
    names = sorted(ann)
    if args.id_range:
        names = [n for n in names if args.id_range[0] <= int(n) <= args.id_range[1]]
    names = names[: args.limit or None]
    errors, inter, failures, times, facings = [], [], [], [], []
    cls_hits = {c: [] for c in CLASS_IDS}
    for name in names:
        files = sorted(args.images.glob(f"{name}.*"))
        if not files:
            failures.append({"image": name, "error": "image file missing"})
            continue
        pixels = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
        raters = list(ann[name].values())
        gt = np.mean(raters, axis=0)
        if args.mirror:
            pixels = np.ascontiguousarray(pixels[:, ::-1])
            gt = gt.copy()
            gt[:, 0] = pixels.shape[1] - 1 - gt[:, 0]
            raters = [np.column_stack([pixels.shape[1] - 1 - r[:, 0], r[:, 1]]) for r in raters]
        options = task_pb2.AnalysisOptions(pixel_spacing_mm=(sx + sy) / 2)
        t0 = time.perf_counter()
        try:
            result = pipeline.run(DecodedImage(pixels=pixels), options)
        except PipelineError as exc:
            failures.append({"image": name, "code": int(exc.code), "error": exc.message})
            continue
        times.append(time.perf_counter() - t0)
        pred = np.array([[lm.x, lm.y] for lm in result.landmarks])
        facings.append(1 if pred[1, 0] >= pred[0, 0] else -1)
        errors.append(radial_mm(pred, gt, sx, sy))
        if len(raters) >= 2:
            inter.append(radial_mm(raters[0], raters[1], sx, sy))
        pc, gc = class_ids(pred, sx, sy), class_ids(gt, sx, sy)
        for c in CLASS_IDS:
            cls_hits[c].append(pc[c] == gc[c])

    err = np.array(errors)
    report = {
        "csv": str(args.csv),
        "images": len(names),
        "evaluated": len(errors),
        "mirror": args.mirror,
        "spacing_mm": {"x": sx, "y": sy},
        "model": engine.manifest.name,
        "version": engine.manifest.version,
        "failures": failures,
        "overall": stats(err) if len(err) else {},
        "per_landmark": {lid: stats(err[:, i]) for i, lid in enumerate(LANDMARK_IDS)} if len(err) else {},
        "interobserver": stats(np.array(inter)) if inter else {},
        "interobserver_per_landmark": (
            {lid: stats(np.array(inter)[:, i]) for i, lid in enumerate(LANDMARK_IDS)} if inter else {}
        ),
        "class_accuracy_percent": {c: float(100 * np.mean(v)) for c, v in cls_hits.items() if v},
        "faces_detected": {"right": facings.count(1), "left": facings.count(-1)},
        "seconds_per_image": float(np.mean(times)) if times else None,
    }
    print_table(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")


def print_table(r: dict) -> None:
    cols = ["mre_mm", "sd_mm"] + [f"sdr_{x}mm" for x in RADII_MM]
    print(
        f"{r['evaluated']}/{r['images']} images, "
        f"spacing x {r['spacing_mm']['x']} y {r['spacing_mm']['y']} mm/px, "
        f"mirror {r['mirror']}, {r['seconds_per_image'] or 0:.2f} s/image, faces {r['faces_detected']}"
    )
    print(
        f"{'landmark':10s} {'MRE':>6s} {'SD':>6s} {'SDR2':>6s} {'SDR2.5':>6s} {'SDR3':>6s} {'SDR4':>6s}   "
        f"{'inter-obs MRE':>13s}"
    )
    inter = r["interobserver_per_landmark"]
    for lid, s in list(r["per_landmark"].items()) + [("overall", r["overall"])]:
        io = r["interobserver"] if lid == "overall" else inter.get(lid, {})
        print(
            f"{lid:10s} "
            + " ".join(f"{s[c]:6.2f}" for c in cols)
            + f"   {io.get('mre_mm', float('nan')):13.2f}"
        )
    print("class accuracy (%): " + ", ".join(f"{c} {v:.0f}" for c, v in r["class_accuracy_percent"].items()))
    if r["failures"]:
        print(f"failures: {r['failures']}")


if __name__ == "__main__":
    main()
