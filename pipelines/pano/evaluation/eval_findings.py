"""Evaluate a pano findings model through the real pipeline (tooth model + findings model, ONNX Runtime).

    .venv/bin/python -m pipelines.pano.evaluation.eval_findings --dataset dc1000 \
        --out models/pano-findings/eval_val.json [--write-manifest]          # caries
    .venv/bin/python -m pipelines.pano.evaluation.eval_findings --dataset tufts \
        --out models/pano-periapical/eval_val.json [--write-manifest]        # periapical

`--dataset` picks the labelled set, its split (dc1000: training/pano_findings/split.json; tufts:
training/pano/split_tufts.json, the tooth model's) and the findings model (pano-findings for caries,
pano-periapical for periapical lesions). Every val film runs through `PanoPipeline.run` with the
type on, once per pixel threshold of PIXEL_GRID (a pixel belongs to a lesion above it), with the
score threshold lowered to the grid's lowest value; the findings are then filtered by score for each
threshold of GRID, so one pass per pixel threshold gives the whole precision/recall curve. Per pair
of thresholds:
- pixel Dice of the reported outlines (filled at full resolution) against the mask, pooled over
  the films and as the mean of per-film Dice;
- lesion precision, recall and F1: every true 8-connected lesion and every reported finding is a
  lesion; one-to-one greedy matches at IoU >= 0.1 (pipelines/pano/evaluation/lesions.py).
The chosen pair is the one with the best recall among those with lesion precision >= 0.5 (ties: the
better precision); a type that never reaches 0.5 gets its best-F1 pair and stays off by default.
`--write-manifest` writes them into the model's manifest.json. Chosen on the same films they are
reported on, these figures are optimistic; `held_out` gives the honest ones: the films in two folds
(alternate ids), each fold's pair chosen on the other fold, the counts of both folds added.

`--film-width W` shrinks every film (and its mask) to W px wide first, as a film from a
lower-resolution device, and runs the model there even below its `min_film_width`; the line "at
the manifest's thresholds" then says how the shipped setting fares at that width, which is how
each type's `min_film_width` was chosen (the narrowest width where its precision stays >= 0.5).
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
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.pano.evaluation.eval_pano import add_engine_arguments, engine_for, refine_extras
from pipelines.pano.evaluation.findings_data import Dc1000, Tufts
from pipelines.pano.evaluation.lesions import Counts, compare
from pipelines.pano.findings import FINDINGS_MODEL, PERIAPICAL_MODEL, polygon_array
from pipelines.pano.pipeline import PanoPipeline

ROOT = Path(__file__).resolve().parents[3]
# --dataset: (reader, default split, findings model directory)
DATASETS = {
    "dc1000": (Dc1000, ROOT / "training" / "pano_findings" / "split.json", FINDINGS_MODEL),
    "tufts": (Tufts, ROOT / "training" / "pano" / "split_tufts.json", PERIAPICAL_MODEL),
}
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


def total(counts: list[Counts]) -> Counts:
    out = Counts()
    for c in counts:
        out.add(c)
    return out


def curve_row(per_film: list[Counts], pixel: float, threshold: float, assigned: int) -> dict:
    c = total(per_film)
    return {"pixel_threshold": pixel, "threshold": threshold, "precision": c.precision, "recall": c.recall,
            "f1": c.f1, "tp": c.tp, "fp": c.fp, "fn": c.fn, "dice_pooled": c.dice,
            "dice_mean_per_image": float(np.mean([f.dice for f in per_film])),
            "assigned_to_a_tooth": assigned / max(c.tp + c.fp, 1), "recall_by_lesion_px": c.recall_by_size()}


def shrink(pixels: np.ndarray, truth: np.ndarray, width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A film and its mask at `width` px wide (INTER_AREA; the mask nearest), never enlarged."""
    h, w = pixels.shape[:2]
    if width is None or width >= w:
        return pixels, truth
    size = (width, max(1, round(h * width / w)))
    small = cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), small


def run_films(
    pipeline: PanoPipeline, films: Dc1000 | Tufts, ids: list, width: int | None = None
) -> tuple[dict, list[int], float]:
    """Per score threshold of GRID, the per-film Counts of the pipeline's findings of `films.finding`
    (findings model as it is set) on the films shrunk to `width` (`shrink`); the findings assigned to
    a tooth; mean seconds per film."""
    options = task_pb2.AnalysisOptions(findings=[films.finding])
    per_film: dict[float, list[Counts]] = {t: [] for t in GRID}
    assigned = {t: 0 for t in GRID}
    seconds = []
    for image_id in ids:
        pixels, truth = shrink(films.pixels(image_id), films.mask(image_id), width)
        start = time.perf_counter()
        try:
            found = list(pipeline.run(DecodedImage(pixels), options).findings)
        except PipelineError:  # no teeth found (an edentulous film): nothing reported, lesions missed
            found = []
        seconds.append(time.perf_counter() - start)
        h, w = pixels.shape
        mine = [f for f in found if f.type == films.finding]
        for t in GRID:
            kept = [f for f in mine if f.raw_score >= t]  # thresholds apply to the raw score
            per_film[t].append(compare(finding_labels(kept, h, w), len(kept), truth))
            assigned[t] += sum(f.fdi != 0 for f in kept)
    return per_film, assigned, float(np.mean(seconds))


def held_out(per_film: dict[tuple[float, float], list[Counts]]) -> dict:
    """Two folds of alternate films: each fold's pair chosen (`choose`) on the other fold; the sums."""
    n = len(next(iter(per_film.values())))
    folds = [list(range(0, n, 2)), list(range(1, n, 2))]
    counts, pairs = Counts(), []
    for k, fold in enumerate(folds):
        other = folds[1 - k]
        rows = [curve_row([c[i] for i in other], pixel, t, 0) for (pixel, t), c in per_film.items()]
        chosen, _ = choose(rows)
        pairs.append([chosen["pixel_threshold"], chosen["threshold"]])
        counts.add(total([per_film[chosen["pixel_threshold"], chosen["threshold"]][i] for i in fold]))
    return {"pairs_chosen_on_the_other_fold": pairs, "precision": counts.precision, "recall": counts.recall,
            "f1": counts.f1, "tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "dice_pooled": counts.dice}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="dc1000")
    parser.add_argument("--data", type=Path, default=None, help="the set directory (default: in ../shared)")
    parser.add_argument("--split", type=Path, default=None)
    parser.add_argument("--split-key", default="val")
    parser.add_argument("--teeth-model", type=Path, default=ROOT / "models" / "pano-teeth")
    add_engine_arguments(parser)
    parser.add_argument("--model", type=Path, default=None, help="findings model directory")
    parser.add_argument("--pixel-thresholds", type=float, nargs="+", default=list(PIXEL_GRID))
    parser.add_argument("--film-width", type=int, default=None,
                        help="shrink every film to this width first (see min_film_width)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--write-manifest", action="store_true",
                        help="write the chosen thresholds and defaults into the model's manifest.json")
    args = parser.parse_args()
    if args.film_width and args.write_manifest:
        parser.error("--film-width measures a width; thresholds are chosen on the films as they are")
    reader, default_split, model_name = DATASETS[args.dataset]
    films = reader() if args.data is None else reader(data_dir=args.data)
    split = args.split or default_split
    model_dir = args.model or ROOT / "models" / model_name
    ids = json.loads(split.read_text())[args.split_key]
    teeth = engine_for(args.teeth_model, args)
    extra = engine_for(model_dir, args)
    pipeline = PanoPipeline(teeth, extras={extra.manifest.name: extra, **refine_extras(args)})
    model = pipeline.findings[extra.manifest.name]
    (shipped,) = [t for t in model.types if t.name == films.finding]
    per_film: dict[tuple[float, float], list[Counts]] = {}
    rows, seconds = [], []
    for pixel in args.pixel_thresholds:
        # Report everything down to the grid's floor; each score threshold is applied afterwards.
        everything = dataclasses.replace(shipped, threshold=GRID[0], pixel_threshold=pixel, min_film_width=0)
        model.types = [everything]
        found, assigned, per_second = run_films(pipeline, films, ids, args.film_width)
        seconds.append(per_second)
        for t in GRID:
            per_film[pixel, t] = found[t]
            rows.append(curve_row(found[t], pixel, t, assigned[t]))
    chosen, default = choose(rows)
    honest = held_out(per_film)
    kind = films.finding
    report: dict = {
        "command": f"python -m pipelines.pano.evaluation.eval_findings --dataset {args.dataset} --split "
        f"{split.relative_to(ROOT) if split.is_relative_to(ROOT) else split} --split-key {args.split_key}",
        "images": len(ids), "seconds_per_film": float(np.mean(seconds)), "film_width": args.film_width,
        "types": {kind: {"chosen": chosen, "default": default, "held_out": honest, "curve": rows}},
    }
    print(f"{kind}: pixel threshold {chosen['pixel_threshold']}, score threshold {chosen['threshold']} "
          f"({'on' if default else 'OFF'} by default)  P {chosen['precision']:.3f} "
          f"R {chosen['recall']:.3f} F1 {chosen['f1']:.3f}  Dice pooled {chosen['dice_pooled']:.3f} "
          f"mean/film {chosen['dice_mean_per_image']:.3f}  (tp {chosen['tp']} fp {chosen['fp']} "
          f"fn {chosen['fn']}; {chosen['assigned_to_a_tooth']:.0%} assigned to a tooth)")
    print("  recall by true lesion size (px): " + ", ".join(
        f"{k} {v['recall']:.2f} ({v['lesions']})" for k, v in chosen["recall_by_lesion_px"].items()))
    print(f"  held out (thresholds chosen on the other fold, {honest['pairs_chosen_on_the_other_fold']}): "
          f"P {honest['precision']:.3f} R {honest['recall']:.3f} F1 {honest['f1']:.3f} "
          f"Dice pooled {honest['dice_pooled']:.3f}")
    at = next((r for r in rows if r["pixel_threshold"] == shipped.pixel_threshold
               and r["threshold"] == shipped.threshold), None)
    if at is not None:
        report["types"][kind]["at_manifest_thresholds"] = at
        print(f"  at the manifest's thresholds (pixel {shipped.pixel_threshold}, score {shipped.threshold}): "
              f"P {at['precision']:.3f} R {at['recall']:.3f} F1 {at['f1']:.3f} (tp {at['tp']} fp {at['fp']})")
    width = f" shrunk to {args.film_width} px wide" if args.film_width else ""
    ms = report["seconds_per_film"] * 1000
    print(f"{report['images']} films{width}, {ms:.0f} ms/film (whole pipeline)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.write_manifest:
        path = model_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        for entry in manifest["findings"]:
            if entry["type"] != kind:
                continue
            entry["threshold"] = chosen["threshold"]
            entry["pixel_threshold"] = chosen["pixel_threshold"]
            entry["default"] = default
            entry["chosen_on"] = (f"{split.name} {args.split_key} films through the pipeline: best "
                                  f"recall at lesion precision >= {MIN_PRECISION}, else best F1 (then off)")
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"thresholds written to {path}")


if __name__ == "__main__":
    main()
