"""Data of the findings models, each film cropped to its dental region exactly as the service crops it
(pipelines/pano/findings.py):
- caries: DC1000 films and masks, split.json here; the tooth outlines (DC1000 has none) come from
  running the real pano pipeline (models/pano-teeth, ONNX Runtime, one thread) on every film once,
  cached in runs/teeth_dc1000.json (about 1 min for 80 films);
- periapical: Tufts films with the expert's `periapical` polygons (abnormalities.json) and the
  annotated tooth polygons (annotations.json), split by image as the tooth model's
  (training/pano/split_tufts.json), so that no tooth-model training film is a findings val film.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipelines.pano import findings
from pipelines.pano.evaluation.findings_data import DC1000_DIR, Dc1000, Tufts

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SPLIT_PATH = HERE / "split.json"
RUNS = HERE / "runs"
TEETH_CACHE = RUNS / "teeth_dc1000.json"
SPLIT_SEED = 1000
# Negatives are drawn from the teeth grown by this many work px (crowns, contacts, restorations;
# for periapical lesions the bone around the apices).
TOOTH_ZONE_GROW = 12


def make_split(data_dir: Path = DC1000_DIR, n_val: int = 16, seed: int = SPLIT_SEED) -> dict:
    """Films sorted by lesion count, cut into runs of len/n_val; one seeded pick per run goes to val,
    so val spans films with few and many lesions."""
    films = Dc1000(data_dir)
    ids = films.ids()
    counts = {i: cv2.connectedComponents(films.mask(i).astype(np.uint8), connectivity=8)[0] - 1
              for i in ids}
    ordered = sorted(ids, key=lambda i: (counts[i], i))
    rng = np.random.default_rng(seed)
    step = len(ordered) / n_val
    val = sorted(ordered[int(k * step) + int(rng.integers(int(step)))] for k in range(n_val))
    train = sorted(set(ids) - set(val))
    return {
        "about": "DC1000 caries films by id (file stem); made by training.pano_findings.data.make_split "
        f"(seed {seed}): sorted by lesion count, one seeded pick per run of {step:g} films to val",
        "seed": seed,
        "train": train,
        "val": val,
    }


def read_split(path: Path = SPLIT_PATH) -> dict:
    return json.loads(path.read_text())


def teeth_outlines(ids: list[str], data_dir: Path = DC1000_DIR, cache: Path = TEETH_CACHE) -> dict[str, list]:
    """{image id: [[fdi, [[x, y], ...]], ...]} from the shipped tooth model, cached."""
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [i for i in ids if i not in known]
    if todo:
        from dentalai.v1 import task_pb2
        from engines.manifest import ModelManifest
        from engines.onnxruntime_engine import OnnxRuntimeEngine
        from pipelines.base_pipeline import DecodedImage
        from pipelines.pano.pipeline import PanoPipeline

        engine = OnnxRuntimeEngine(ModelManifest.load(ROOT / "models" / "pano-teeth"), intra_threads=1)
        pipeline = PanoPipeline(engine)
        films = Dc1000(data_dir)
        for image_id in todo:
            result = pipeline.run(DecodedImage(films.pixels(image_id)), task_pb2.AnalysisOptions())
            known[image_id] = [
                [t.fdi, [[c.number_value for c in v.list_value.values] for v in t.polygon.values]]
                for t in result.teeth
            ]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return {i: known[i] for i in ids}


@dataclass
class Film:
    """One film in the findings frame."""

    image_id: str
    x: np.ndarray  # float32 (H, W) normalised crop, padded to STRIDE
    y: np.ndarray  # float32 (H, W) share of each work pixel that is lesion (soft target)
    zone: np.ndarray  # bool (H, W) teeth grown by TOOTH_ZONE_GROW: where negatives are drawn
    lesions: np.ndarray  # (K, 2) lesion centres (x, y) in work px
    roi: findings.Roi
    teeth: list[np.ndarray]  # outlines in input px
    mask: np.ndarray  # bool full-resolution ground truth (for evaluation)


def make_film(image_id: str, pixels: np.ndarray, mask: np.ndarray, teeth: list[np.ndarray],
              work_width: int, zone_grow: int = TOOTH_ZONE_GROW) -> Film:
    """A film in the findings frame of a model whose work width is `work_width`."""
    h, w = pixels.shape
    box = findings.teeth_box(teeth, w, h, work_width)
    roi = findings.prepare_roi(pixels, box, work_width)
    x0, y0, x1, y1 = box
    crop = mask[y0:y1, x0:x1].astype(np.float32)
    soft = cv2.resize(crop, (roi.width, roi.height), interpolation=cv2.INTER_AREA)
    ph, pw = roi.tensor.shape[1:]
    y = np.zeros((ph, pw), np.float32)
    y[:roi.height, :roi.width] = soft
    labels = findings.tooth_labels(roi, teeth)
    k = 2 * zone_grow + 1
    zone = np.zeros((ph, pw), bool)
    zone[:roi.height, :roi.width] = cv2.dilate((labels > 0).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    if not zone.any():  # a film without teeth (edentulous): negatives anywhere in it
        zone[:roi.height, :roi.width] = True
    n, _, _, centres = cv2.connectedComponentsWithStats((y > 0.25).astype(np.uint8), connectivity=8)
    return Film(image_id, roi.tensor[0], y, zone, centres[1:n].astype(np.float32), roi, teeth, mask)


def load_film(image_id: str, outlines: list, work_width: int = findings.WORK_WIDTH,
              data_dir: Path = DC1000_DIR) -> Film:
    """A DC1000 caries film (tooth outlines from `teeth_outlines`)."""
    films = Dc1000(data_dir)
    teeth = [np.asarray(p, np.float64) for _, p in outlines]
    return make_film(image_id, films.pixels(image_id), films.mask(image_id), teeth, work_width)


def tufts_film(tufts: Tufts, image_id: int, work_width: int, zone_grow: int) -> Film:
    """A Tufts film in the findings frame, cropped to its annotated teeth."""
    return make_film(str(image_id), tufts.pixels(image_id), tufts.mask(image_id),
                     tufts.tooth_polygons(image_id), work_width, zone_grow)


def coverage(films: list[Film]) -> float:
    """Share of the labelled lesion pixels that fall inside the dental crops."""
    inside = sum(float(f.y.sum()) * f.roi.scale ** 2 for f in films)
    total = sum(float(f.mask.sum()) for f in films)
    return inside / max(total, 1.0)


if __name__ == "__main__":
    split = make_split()
    SPLIT_PATH.write_text(json.dumps(split, indent=1) + "\n")
    print(f"train {len(split['train'])}  val {len(split['val'])}  -> {SPLIT_PATH}")
