"""Evaluate the ceph pipeline (both stages through ONNX Runtime, loaded as a worker loads them) on a
folder in the shared/data CSV format.

    .venv/bin/python -m pipelines.ceph.evaluation.eval_ceph \
        --csv ../shared/data/ceph/isbi2015_640x800/landmarks_val.csv \
        --images ../shared/data/ceph/isbi2015_640x800/images \
        --spacing-x 0.3023 --spacing-y 0.3 --out /tmp/ceph_eval_isbi_val.json

Ground truth is the mean of the CSV's annotators; their mutual disagreement on the same images is
reported as a reference. Errors are radial, in mm with per-axis spacing (x and y may differ).
Classes (the eight ISBI ones) are computed the same way from predicted and from ground-truth
landmarks, in mm coordinates, and compared. `--mirror` flips each image (and its ground truth)
to check the orientation handling. Hamedan (spacing not published; 0.11 mm/px assumed) held-out
images only: `--id-range 71 100` (001-070 are in the training data). `--stage1-only` reports the
first stage alone. The error by confidence decile says whether the reported confidence means anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
from google.protobuf.json_format import MessageToDict

from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.ceph import measurements as meas
from pipelines.ceph import summary as ceph_summary
from pipelines.ceph.pipeline import REFINE_MODEL, CephPipeline
from pipelines.ceph.preprocess import LANDMARK_IDS
from pipelines.registry import load_pipeline

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


def load_ceph(models_dir: Path, threads: int) -> CephPipeline:
    """The ceph pipeline exactly as a worker loads it (both stages, ONNX Runtime on the CPU)."""
    try:
        pipeline = load_pipeline("ceph", models_dir, threads=threads)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    assert isinstance(pipeline, CephPipeline)
    return pipeline


def by_decile(conf: np.ndarray, err: np.ndarray) -> list[dict[str, float]]:
    """Landmark errors grouped by reported confidence, lowest tenth first: does confidence mean anything?"""
    c, e = conf.ravel(), err.ravel()
    order = np.argsort(c, kind="stable")
    out = []
    for part in np.array_split(order, 10):
        out.append(
            {
                "confidence_min": float(c[part].min()),
                "confidence_max": float(c[part].max()),
                "mre_mm": float(e[part].mean()),
                "sdr_2mm": float(100 * (e[part] <= 2.0).mean()),
                "over_4mm_percent": float(100 * (e[part] > 4.0).mean()),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--spacing-x", type=float, required=True, help="mm per pixel along x")
    ap.add_argument("--spacing-y", type=float, required=True, help="mm per pixel along y")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stage1-only", action="store_true", help="skip the refinement stage (for comparison)")
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

    pipeline = load_ceph(args.models_dir, args.threads)
    if args.stage1_only:
        del pipeline.extras[REFINE_MODEL]
    ann = read_annotations(args.csv)
    names = sorted(ann)
    if args.id_range:
        names = [n for n in names if args.id_range[0] <= int(n) <= args.id_range[1]]
    names = names[: args.limit or None]
    errors, confidences, inter, failures, times, facings = [], [], [], [], [], []
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
        confidences.append([lm.confidence for lm in result.landmarks])
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
        "model": MessageToDict(pipeline.model_info) | ({"stage1_only": True} if args.stage1_only else {}),
        "failures": failures,
        "overall": stats(err) if len(err) else {},
        "per_landmark": {lid: stats(err[:, i]) for i, lid in enumerate(LANDMARK_IDS)} if len(err) else {},
        "interobserver": stats(np.array(inter)) if inter else {},
        "interobserver_per_landmark": (
            {lid: stats(np.array(inter)[:, i]) for i, lid in enumerate(LANDMARK_IDS)} if inter else {}
        ),
        "class_accuracy_percent": {c: float(100 * np.mean(v)) for c, v in cls_hits.items() if v},
        "error_by_confidence_decile": by_decile(np.array(confidences), err) if len(err) else [],
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
    print("error by confidence decile (conf range: MRE mm, SDR 2 mm %, > 4 mm %):")
    for d in r["error_by_confidence_decile"]:
        print(
            f"  {d['confidence_min']:.2f}-{d['confidence_max']:.2f}: {d['mre_mm']:.2f}, "
            f"{d['sdr_2mm']:.0f}, {d['over_4mm_percent']:.0f}"
        )
    if r["failures"]:
        print(f"failures: {r['failures']}")


if __name__ == "__main__":
    main()
