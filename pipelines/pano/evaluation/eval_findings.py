"""Evaluate pano findings through the real pipeline (tooth model + findings model, ONNX Runtime).

    .venv/bin/python -m pipelines.pano.evaluation.eval_findings \
        --split training/pano_findings/split.json --out models/pano-findings/eval_val.json \
        [--write-manifest]

Every val film of DC1000 runs through `PanoPipeline.run` with all finding types on, once per pixel
threshold of PIXEL_GRID (a pixel belongs to a lesion above it), with the score thresholds lowered to
the grid's lowest value; the findings are then filtered by score for each threshold of GRID, so one
pass per pixel threshold gives the whole precision/recall curve. Per type and pair of thresholds:
- pixel Dice of the reported outlines (filled at full resolution) against the mask, pooled over
  the films and as the mean of per-film Dice;
- lesion precision, recall and F1: every true 8-connected lesion and every reported finding is a
  lesion; one-to-one greedy matches at IoU >= 0.1 (pipelines/pano/evaluation/lesions.py).
The chosen pair per type is the one with the best recall among those with lesion precision >= 0.5
(ties: the better precision); a type that never reaches 0.5 gets its best-F1 pair and stays off by
default. `--write-manifest` writes them into models/pano-findings/manifest.json. Both are chosen on
the same 16 films they are reported on, so the figures are optimistic (see the model card).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np

from dentalai.v1 import results_pb2, task_pb2
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.base_pipeline import DecodedImage
from pipelines.pano.evaluation.lesions import Counts, compare
from pipelines.pano.findings import FINDINGS_MODEL, polygon_array
from pipelines.pano.pipeline import PanoPipeline

ROOT = Path(__file__).resolve().parents[3]
DC1000 = ROOT.parent / "shared" / "data" / "pano" / "dc1000_caries"
# Score thresholds tried: 0.20 ... 0.95 by 0.025, then 0.96 ... 0.99 (peak probabilities crowd near 1).
GRID = [round(0.2 + 0.025 * k, 3) for k in range(31)] + [0.96, 0.97, 0.98, 0.99]
PIXEL_GRID = (0.2, 0.3, 0.4, 0.5)
MIN_PRECISION = 0.5


def finding_labels(found: list[results_pb2.Finding], height: int, width: int) -> np.ndarray:
    """Label map at full resolution: finding k's outline filled with k + 1."""
    labels = np.zeros((height, width), np.int32)
    for k, finding in enumerate(found):
        pts = np.round(polygon_array(finding.polygon) * 8).astype(np.int32)
        cv2.fillPoly(labels, [pts], k + 1, shift=3)
    return labels


def choose(rows: list[dict]) -> tuple[dict, bool]:
    """(row, default on): best recall at precision >= 0.5, else best F1 and off."""
    ok = [r for r in rows if r["precision"] >= MIN_PRECISION and r["tp"] > 0]
    if ok:
        return max(ok, key=lambda r: (r["recall"], r["precision"])), True
    return max(rows, key=lambda r: (r["f1"], r["precision"])), False


def evaluate(pipeline: PanoPipeline, ids: list[str], data_dir: Path) -> tuple[dict[str, list[dict]], float]:
    """Per type, one metrics row per score threshold of GRID, with the pipeline's findings model as
    it is set (pixel thresholds); and the mean seconds per film of the whole pipeline."""
    model = pipeline.findings
    assert model is not None, "the pipeline has no findings model"
    types = [t.name for t in model.types]
    options = task_pb2.AnalysisOptions(findings=types)
    pooled = {(k, t): Counts() for k in types for t in GRID}
    per_image: dict[tuple[str, float], list[float]] = {(k, t): [] for k in types for t in GRID}
    assigned = {(k, t): 0 for k in types for t in GRID}
    seconds = []
    for image_id in ids:
        pixels = cv2.imread(str(data_dir / "images" / f"{image_id}.jpg"), cv2.IMREAD_GRAYSCALE)
        truth = {"caries": cv2.imread(str(data_dir / "caries_masks" / f"{image_id}.png"), 0) > 127}
        start = time.perf_counter()
        result = pipeline.run(DecodedImage(pixels), options)
        seconds.append(time.perf_counter() - start)
        h, w = pixels.shape
        for kind in types:
            mine = [f for f in result.findings if f.type == kind]
            for t in GRID:
                kept = [f for f in mine if f.score >= t]
                counts = compare(finding_labels(kept, h, w), len(kept), truth[kind])
                pooled[kind, t].add(counts)
                per_image[kind, t].append(counts.dice)
                assigned[kind, t] += sum(f.fdi != 0 for f in kept)
    pixel = {t.name: t.pixel_threshold for t in model.types}
    curves = {
        kind: [
            {"pixel_threshold": pixel[kind], "threshold": t, "precision": c.precision, "recall": c.recall,
             "f1": c.f1, "tp": c.tp, "fp": c.fp, "fn": c.fn, "dice_pooled": c.dice,
             "dice_mean_per_image": float(np.mean(per_image[kind, t])),
             "assigned_to_a_tooth": assigned[kind, t] / max(c.tp + c.fp, 1),
             "recall_by_lesion_px": c.recall_by_size()}
            for t in GRID
            for c in [pooled[kind, t]]
        ]
        for kind in types
    }
    return curves, float(np.mean(seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DC1000)
    parser.add_argument("--split", type=Path, default=ROOT / "training" / "pano_findings" / "split.json")
    parser.add_argument("--split-key", default="val")
    parser.add_argument("--teeth-model", type=Path, default=ROOT / "models" / "pano-teeth")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / FINDINGS_MODEL)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pixel-thresholds", type=float, nargs="+", default=list(PIXEL_GRID))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--write-manifest", action="store_true",
                        help="write the chosen thresholds and defaults into the model's manifest.json")
    args = parser.parse_args()
    ids = json.loads(args.split.read_text())[args.split_key]
    teeth = OnnxRuntimeEngine(ModelManifest.load(args.teeth_model), intra_threads=args.threads)
    extra = OnnxRuntimeEngine(ModelManifest.load(args.model), intra_threads=args.threads)
    pipeline = PanoPipeline(teeth, extras={FINDINGS_MODEL: extra})
    model = pipeline.findings
    assert model is not None
    shipped = list(model.types)
    curves: dict[str, list[dict]] = {t.name: [] for t in shipped}
    seconds = []
    for pixel in args.pixel_thresholds:
        # Report everything down to the grid's floor; each score threshold is applied afterwards.
        model.types = [dataclasses.replace(t, threshold=GRID[0], pixel_threshold=pixel) for t in shipped]
        found, per_film = evaluate(pipeline, ids, args.data)
        seconds.append(per_film)
        for kind, rows in found.items():
            curves[kind] += rows
    report: dict = {
        "command": "python -m pipelines.pano.evaluation.eval_findings --split "
        f"{args.split.relative_to(ROOT) if args.split.is_relative_to(ROOT) else args.split}",
        "images": len(ids), "seconds_per_film": float(np.mean(seconds)), "types": {},
    }
    for kind, rows in curves.items():
        chosen, default = choose(rows)
        report["types"][kind] = {"chosen": chosen, "default": default, "curve": rows}
        print(f"{kind}: pixel threshold {chosen['pixel_threshold']}, score threshold {chosen['threshold']} "
              f"({'on' if default else 'OFF'} by default)  P {chosen['precision']:.3f} "
              f"R {chosen['recall']:.3f} F1 {chosen['f1']:.3f}  Dice pooled {chosen['dice_pooled']:.3f} "
              f"mean/film {chosen['dice_mean_per_image']:.3f}  (tp {chosen['tp']} fp {chosen['fp']} "
              f"fn {chosen['fn']}; {chosen['assigned_to_a_tooth']:.0%} assigned to a tooth)")
        print("  recall by true lesion size (px): " + ", ".join(
            f"{k} {v['recall']:.2f} ({v['lesions']})" for k, v in chosen["recall_by_lesion_px"].items()))
    print(f"{report['images']} films, {report['seconds_per_film'] * 1000:.0f} ms/film (whole pipeline)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.write_manifest:
        path = args.model / "manifest.json"
        manifest = json.loads(path.read_text())
        for entry in manifest["findings"]:
            row = report["types"][entry["type"]]
            entry["threshold"] = row["chosen"]["threshold"]
            entry["pixel_threshold"] = row["chosen"]["pixel_threshold"]
            entry["default"] = row["default"]
            entry["chosen_on"] = (f"{args.split.name} {args.split_key} films through the pipeline: best "
                                  f"recall at lesion precision >= {MIN_PRECISION}, else best F1 (then off)")
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"thresholds written to {path}")


if __name__ == "__main__":
    main()
