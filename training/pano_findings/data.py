"""DC1000 caries data for the findings model: fixed split, tooth outlines from the shipped tooth model,
and each film cropped to its dental region exactly as the service crops it (pipelines/pano/findings.py).

The tooth outlines come from running the real pano pipeline (models/pano-teeth, ONNX Runtime, one
thread) on every film once; they are cached in runs/teeth_dc1000.json (about 1 min for 80 films).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipelines.pano import findings

ROOT = Path(__file__).resolve().parents[2]
DC1000 = ROOT.parent / "shared" / "data" / "pano" / "dc1000_caries"
HERE = Path(__file__).resolve().parent
SPLIT_PATH = HERE / "split.json"
RUNS = HERE / "runs"
TEETH_CACHE = RUNS / "teeth_dc1000.json"
SPLIT_SEED = 1000
# Negatives are drawn from the teeth grown by this many work px (crowns, contacts, restorations).
TOOTH_ZONE_GROW = 12


def image_ids(data_dir: Path = DC1000) -> list[str]:
    return sorted(p.stem for p in (data_dir / "caries_masks").glob("*.png"))


def read_mask(image_id: str, data_dir: Path = DC1000) -> np.ndarray:
    return cv2.imread(str(data_dir / "caries_masks" / f"{image_id}.png"), cv2.IMREAD_GRAYSCALE) > 127


def read_image(image_id: str, data_dir: Path = DC1000) -> np.ndarray:
    return cv2.imread(str(data_dir / "images" / f"{image_id}.jpg"), cv2.IMREAD_GRAYSCALE)


def make_split(data_dir: Path = DC1000, n_val: int = 16, seed: int = SPLIT_SEED) -> dict:
    """Films sorted by lesion count, cut into runs of len/n_val; one seeded pick per run goes to val,
    so val spans films with few and many lesions."""
    ids = image_ids(data_dir)
    counts = {i: cv2.connectedComponents(read_mask(i, data_dir).astype(np.uint8), connectivity=8)[0] - 1
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


def teeth_outlines(ids: list[str], data_dir: Path = DC1000, cache: Path = TEETH_CACHE) -> dict[str, list]:
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
        for image_id in todo:
            result = pipeline.run(DecodedImage(read_image(image_id, data_dir)), task_pb2.AnalysisOptions())
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


def polygon_box(poly: np.ndarray) -> list[float]:
    x, y = poly[:, 0], poly[:, 1]
    return [float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y))]


def load_film(image_id: str, outlines: list, data_dir: Path = DC1000) -> Film:
    pixels = read_image(image_id, data_dir)
    mask = read_mask(image_id, data_dir)
    h, w = pixels.shape
    teeth = [np.asarray(p, np.float64) for _, p in outlines]
    box = findings.roi_box([polygon_box(p) for p in teeth], w, h)
    roi = findings.prepare_roi(pixels, box)
    x0, y0, x1, y1 = box
    crop = mask[y0:y1, x0:x1].astype(np.float32)
    soft = cv2.resize(crop, (roi.width, roi.height), interpolation=cv2.INTER_AREA)
    ph, pw = roi.tensor.shape[1:]
    y = np.zeros((ph, pw), np.float32)
    y[:roi.height, :roi.width] = soft
    labels = findings.tooth_labels(roi, teeth)
    k = 2 * TOOTH_ZONE_GROW + 1
    zone = np.zeros((ph, pw), bool)
    zone[:roi.height, :roi.width] = cv2.dilate((labels > 0).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    n, _, _, centres = cv2.connectedComponentsWithStats((y > 0.25).astype(np.uint8), connectivity=8)
    return Film(image_id, roi.tensor[0], y, zone, centres[1:n].astype(np.float32), roi, teeth, mask)


def coverage(films: list[Film]) -> float:
    """Share of the labelled lesion pixels that fall inside the dental crops."""
    inside = sum(float(f.y.sum()) * f.roi.scale ** 2 for f in films)
    total = sum(float(f.mask.sum()) for f in films)
    return inside / max(total, 1.0)


if __name__ == "__main__":
    split = make_split()
    SPLIT_PATH.write_text(json.dumps(split, indent=1) + "\n")
    print(f"train {len(split['train'])}  val {len(split['val'])}  -> {SPLIT_PATH}")
