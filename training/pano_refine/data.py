"""Teeth for the refinement model: each ground-truth tooth of UFBA and Tufts with its film and the
whole-film model's own-class probability around it, cached once per set and split part.

    .venv/bin/python -m training.pano_refine.data --dataset tufts

The whole-film model is the shipped `models/pano-teeth`, run through the pano pipeline's own
inference (mirrored pass included), so the second channel is what the service will give the
refiner. It was trained on the same train images, so its probabilities are cleaner there than on
new films; the trainer roughens them (`train.py`). A tooth's own classes follow the service's rule
(`instances.own_classes`) over its ground-truth pixels instead of a found component's.
"""

from __future__ import annotations

import argparse
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.pano import instances, refine
from pipelines.pano.pipeline import PanoPipeline
from pipelines.pano.preprocess import prepare
from training.pano.data import DEFAULT_DATA, SPLIT_PATH, TUFTS_DATA, TUFTS_SPLIT_PATH, load_coco, read_split

ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(__file__).resolve().parent / "runs"
SETS = {"ufba425": (DEFAULT_DATA, SPLIT_PATH), "tufts": (TUFTS_DATA, TUFTS_SPLIT_PATH)}
# The own-class probability is kept over the tooth's box grown by this factor (and the crop's
# margins), so that crops around boxes that are off still find it.
KEEP_GROW = 2.5


@dataclass
class ToothSample:
    image: int  # index into the part's films
    fdi: int
    polygon: np.ndarray  # (N, 2) frame px
    box: np.ndarray  # [x, y, w, h] frame px of the polygon
    own: np.ndarray  # float16, a region of the model frame
    origin: tuple[int, int]  # (x, y) of that region in the model frame
    per_model: tuple[float, float]  # frame px per model px


@dataclass
class Part:
    films: list[np.ndarray]  # uint8 window of each film in the refinement frame (x / 255 = Frame.film)
    teeth: list[ToothSample]


def cache_path(dataset: str, part: str) -> Path:
    return RUNS / f"cache_{dataset}_{part}.pkl"


def build(dataset: str, part: str, model_dir: Path) -> Part:
    data_dir, split_path = SETS[dataset]
    ids = read_split(split_path)[part]
    coco = load_coco(data_dir)
    images = {im["id"]: im for im in coco["images"]}
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    engine = OnnxRuntimeEngine(ModelManifest.load(model_dir), intra_threads=1)
    pipe = PanoPipeline(engine)
    out = Part(films=[], teeth=[])
    grid = 64  # KEEP_GROW crops: only their extent matters
    for k, image_id in enumerate(ids):
        pixels = cv2.imread(str(data_dir / "images" / images[image_id]["file_name"]), cv2.IMREAD_GRAYSCALE)
        prepared = prepare(pixels, pipe.height, pipe.width)
        probs = instances.softmax(pipe._infer(prepared.tensor).astype(np.float32))
        frame = refine.make_frame(pixels)
        per_model = (prepared.scale_x / frame.scale_x, prepared.scale_y / frame.scale_y)
        out.films.append(np.round(frame.film * 255).astype(np.uint8))
        for ann in by_image.get(image_id, []):
            pts = np.asarray(ann["segmentation"][0], np.float64).reshape(-1, 2)
            model_pts = (pts + 0.5) / [prepared.scale_x, prepared.scale_y] - 0.5
            mask = np.zeros(probs.shape[1:], np.uint8)
            cv2.fillPoly(mask, [np.round(model_pts * 8).astype(np.int32)], 1, shift=3)
            if not mask.any():
                continue
            mine = instances.own_classes(probs[:, mask.astype(bool)].mean(axis=1), len(probs))
            frame_pts = (pts + 0.5) / [frame.scale_x, frame.scale_y] - 0.5
            x0, y0 = frame_pts.min(0)
            x1, y1 = frame_pts.max(0)
            box = np.array([x0, y0, x1 - x0, y1 - y0])
            wide = [x0 - (KEEP_GROW - 1) / 2 * box[2], y0 - (KEEP_GROW - 1) / 2 * box[3],
                    KEEP_GROW * box[2], KEEP_GROW * box[3]]
            rx0, ry0, rx1, ry1 = refine.model_region(refine.crop_matrix(wide, grid, grid), per_model,
                                                     grid, grid, probs.shape[1:])
            own = probs[mine, ry0:ry1, rx0:rx1].sum(axis=0).astype(np.float16)
            fdi = int(ann["category_id"])
            out.teeth.append(ToothSample(k, fdi, frame_pts, box, own, (rx0, ry0), per_model))
        if k % 50 == 0:
            print(f"{dataset} {part}: {k + 1}/{len(ids)} images, {len(out.teeth)} teeth", flush=True)
    return out


class _Unpickler(pickle.Unpickler):
    # `python -m` writes this module's classes as __main__'s.
    def find_class(self, module: str, name: str) -> object:
        return super().find_class(__name__ if module == "__main__" else module, name)


def load(dataset: str, part: str) -> Part:
    with cache_path(dataset, part).open("rb") as f:
        return _Unpickler(f).load()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(SETS), required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "pano-teeth")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    for part in ("val", "train"):
        t0 = time.time()
        built = build(args.dataset, part, args.model)
        with cache_path(args.dataset, part).open("wb") as f:
            pickle.dump(built, f, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"{args.dataset} {part}: {len(built.films)} films, {len(built.teeth)} teeth "
              f"in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
