"""Fit the numbering's gap prior (`pipelines.pano.postrules.GAP_PRIOR`) on the training films.

    .venv/bin/python -m training.pano.gap_prior

Runs the shipped tooth model (`models/pano-teeth`, mirrored pass included) on the training films of
both sets (UFBA: training/pano/split.json, Tufts: split_tufts.json), matches its tooth candidates to the
annotated teeth (IoU >= 0.5 in the model frame) and, for each pair of annotated permanent neighbours of
a quadrant that were both found, takes the gap ratio and how many teeth the annotation skips between
them. Prints the location (median) and scale (1.4826 x median absolute deviation) of the ratio for 0,
1, 2 and 3 or more skipped teeth, then the numbering errors on the same films for a few weights of the
gap evidence, to choose it without looking at the validation films. About 6 minutes on one thread.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.pano import instances, postrules
from pipelines.pano.evaluation.eval_pano import match, polygon_mask
from pipelines.pano.pipeline import PanoConfig, PanoPipeline, candidates
from pipelines.pano.preprocess import prepare, to_gray_float
from training.pano.data import TUFTS_SPLIT_PATH

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "pano"
SETS = {"ufba425": ROOT / "training" / "pano" / "split.json", "tufts": TUFTS_SPLIT_PATH}
WEIGHTS = (0.0, 0.15, 0.25, 0.35, 0.5, 1.0)
MOST_SKIPPED = 3  # 3 or more skipped teeth share one distribution


@dataclass
class Film:
    cands: list[instances.Instance]
    truth: list[int | None]  # annotated FDI number of each candidate (None: matched none)


def films(pipeline: PanoPipeline, dataset: str) -> list[Film]:
    coco = json.loads((DATA / dataset / "annotations.json").read_text())
    images = {im["id"]: im for im in coco["images"]}
    anns: dict[int, list[dict]] = defaultdict(list)
    for ann in coco["annotations"]:
        anns[ann["image_id"]].append(ann)
    h, w = pipeline.height, pipeline.width
    out = []
    for image_id in json.loads(SETS[dataset].read_text())["train"]:
        path = DATA / dataset / "images" / images[image_id]["file_name"]
        pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scale = np.array([w / pixels.shape[1], h / pixels.shape[0]], np.float32)
        logits = pipeline._infer(prepare(to_gray_float(pixels), h, w).tensor)
        cands, _ = candidates(logits.astype(np.float32))
        gt = [polygon_mask(np.asarray(a["segmentation"][0], np.float32).reshape(-1, 2) * scale, h, w)
              for a in anns[image_id]]
        truth: list[int | None] = [None] * len(cands)
        for i, j, _ in match([c.mask for c in cands], gt):
            truth[i] = anns[image_id][j]["category_id"]
        out.append(Film(cands, truth))
    return out


def reported(film: Film) -> list[tuple[instances.Instance, int]]:
    """Candidates the pipeline reports (by score) that match an annotated tooth, with its number."""
    return [(c, f) for c, f in zip(film.cands, film.truth, strict=True)
            if f is not None and c.foreground >= PanoConfig.min_score]


def fit(data: list[Film]) -> tuple[tuple[float, float], ...]:
    ratios: dict[int, list[float]] = defaultdict(list)
    for film in data:
        for q in (1, 2, 3, 4):
            teeth = sorted(((f % 10, c) for c, f in reported(film) if f // 10 == q), key=lambda t: t[0])
            for (a, inner), (b, outer) in zip(teeth, teeth[1:], strict=False):
                ratios[min(b - a - 1, MOST_SKIPPED)].append(postrules.gap_ratio(inner, outer, q))
    out = []
    for k in range(MOST_SKIPPED + 1):
        r = np.asarray(ratios[k])
        loc = float(np.median(r))
        out.append((round(loc, 3), round(1.4826 * float(np.median(np.abs(r - loc))), 3)))
        print(f"skipped {k}: {len(r)} pairs, location {out[-1][0]}, scale {out[-1][1]}")
    return tuple(out)


def errors(data: list[Film], gap: postrules.GapPrior, width: float) -> tuple[int, int]:
    wrong = total = 0
    for film in data:
        numbers = postrules.renumber(film.cands, width, gap)
        for c, truth, n in zip(film.cands, film.truth, numbers, strict=True):
            if n is None or truth is None or c.foreground < PanoConfig.min_score:
                continue
            total += 1
            wrong += n != truth
    return wrong, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "pano-teeth")
    args = parser.parse_args()
    engine = OnnxRuntimeEngine(ModelManifest.load(args.model), intra_threads=1)
    pipeline = PanoPipeline(engine, PanoConfig())
    data = {name: films(pipeline, name) for name in SETS}
    ratio = fit([f for films_ in data.values() for f in films_])
    dof = postrules.GAP_PRIOR.dof
    for weight in WEIGHTS:
        gap = postrules.GapPrior(ratio, dof, weight)
        counts = "  ".join(f"{name} {'{} / {}'.format(*errors(films_, gap, float(pipeline.width)))}"
                           for name, films_ in data.items())
        print(f"weight {weight}: teeth numbered wrong {counts}")


if __name__ == "__main__":
    main()
