"""Fit the pano film check (`pipelines/pano/film_check.py`) on training films only, and say how it
does on training data; `wrong_kind.py` measures it on validation films and other kinds of image.

    .venv/bin/python -m pipelines.pano.evaluation.film_check_fit [--write]

- The panoramics: the training films of the three sets (Tufts `training/pano/split_tufts.json`,
  UFBA `training/pano/split.json`, DC1000 `training/pano_findings/split.json`, "train"), each with
  AUGMENT augmented copies (gamma 0.6-1.6, zoom 0.85-1.15 with up to 8 % of aspect, shift up to 5 %,
  blur), since other devices' films differ in exposure and framing; a film with fewer than MIN_TEETH
  annotated teeth gets FEW_TEETH_COPIES more. Those films are rare (77 of 964) but they are the only
  ones the check is asked about: fitted without the extra copies the check refused four of UFBA's
  nearly edentulous training films, all with implants (149, 151, 162, 172); with them one (151).
- The threshold is the THRESHOLD_QUANTILE quantile of out-of-fold scores: five folds by film, each
  fold's films scored by a model fitted on the other four (with their copies), so it is a score
  of films the model has not seen. The shipped model is fitted on all of them.
- Printed, all on training data: the out-of-fold scores per set; each set left out in turn (fitted
  on the other two the same way, the left-out set's films scored: how the check fares on a device it
  never saw); the scores of training non-panoramics (cephalograms ISBI 001-100 and Hamedan 001-070,
  the ceph models' training films, and generated images of seed 1); and the most teeth the tooth
  model finds on those non-panoramics, which sets `min_teeth` (the film check is asked of films
  with fewer teeth).
`--write` saves the model to models/pano-teeth/film_check.npz and its numbers into the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from engines.registry import load_engine
from pipelines.calibration import folds_by_group
from pipelines.pano.evaluation import non_radiographs
from pipelines.pano.film_check import LayoutModel, detail, features
from pipelines.pano.pipeline import PanoConfig, PanoPipeline
from pipelines.pano.preprocess import INPUT_HEIGHT, INPUT_WIDTH, prepare, to_gray_float, window

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data"
MODEL = ROOT / "models" / "pano-teeth"
COMPONENTS = 16
AUGMENT = 3
FEW_TEETH_COPIES = 20
FOLDS = 5
THRESHOLD_QUANTILE = 99.5
# Films with at least this many teeth found skip the check: twice the most teeth found on a training
# non-panoramic (six, on a checkerboard; cephalograms three).
MIN_TEETH = 12
# A film with less fine detail than this share of the least detailed training panoramic is refused.
DETAIL_SHARE = 0.5
SEED = 2026


def pano_films(split_key: str = "train") -> Iterator[tuple[str, str, Path]]:
    """(set, film key, path) of the panoramic films of a split of the three sets."""
    for name, key, path, _ in annotated_pano_films(split_key):
        yield name, key, path


def annotated_pano_films(split_key: str = "train") -> Iterator[tuple[str, str, Path, int]]:
    """`pano_films` with each film's number of annotated teeth (DC1000 has none annotated: its films
    all hold most teeth, counted as 32)."""
    for name, split in (("tufts", "training/pano/split_tufts.json"), ("ufba425", "training/pano/split.json")):
        coco = json.loads((DATA / "pano" / name / "annotations.json").read_text())
        files = {im["id"]: im["file_name"] for im in coco["images"]}
        teeth: dict[int, int] = {}
        for ann in coco["annotations"]:
            teeth[ann["image_id"]] = teeth.get(ann["image_id"], 0) + 1
        for image_id in json.loads((ROOT / split).read_text())[split_key]:
            path = DATA / "pano" / name / "images" / files[image_id]
            yield name, f"{name}/{image_id}", path, teeth.get(image_id, 0)
    for stem in json.loads((ROOT / "training/pano_findings/split.json").read_text())[split_key]:
        yield "dc1000", f"dc1000/{stem}", DATA / "pano" / "dc1000_caries" / "images" / f"{stem}.jpg", 32


def ceph_films(train: bool) -> Iterator[tuple[str, Path]]:
    """ISBI and Hamedan cephalograms: the ceph models' training films (ISBI 001-100, Hamedan
    001-070) or the others (ISBI 151-200 and the ten full-resolution films, Hamedan 071-100)."""
    for path in sorted((DATA / "ceph" / "isbi2015_640x800" / "images").glob("*.png")):
        if (int(path.stem) <= 100) == train:
            yield "ISBI", path
    for path in sorted((DATA / "ceph" / "hamedan" / "images").glob("*")):
        if (int(path.stem) <= 70) == train:
            yield "Hamedan", path
    if not train:
        for path in sorted((DATA / "ceph" / "isbi2015_fullres" / "images").glob("*.png")):
            yield "ISBI full resolution", path


def windowed(gray: np.ndarray) -> np.ndarray:
    """The film at the model's frame, windowed to [0, 1] (what the augmentations work on)."""
    interp = cv2.INTER_AREA if gray.shape[1] > INPUT_WIDTH else cv2.INTER_LINEAR
    return window(cv2.resize(to_gray_float(gray), (INPUT_WIDTH, INPUT_HEIGHT), interpolation=interp))


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape
    out = np.clip(image, 0, 1) ** rng.uniform(0.6, 1.6)
    s = rng.uniform(0.85, 1.15)
    sx = s * rng.uniform(0.92, 1.08)
    tx, ty = rng.uniform(-0.05, 0.05) * w, rng.uniform(-0.05, 0.05) * h
    m = np.array([[sx, 0, (1 - sx) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]])
    out = cv2.warpAffine(out.astype(np.float32), m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    return out


def pano_features(
    films: list[tuple[str, str, Path, int]],
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(features of each film, features of its augmented copies (one (k, D) array a film), detail
    of each film)."""
    rng = np.random.default_rng(SEED)
    own, copies, fine = [], [], []
    for _, _, path, teeth in films:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        tensor = prepare(gray).tensor[0]
        own.append(features(tensor))
        fine.append(detail(tensor))
        base = windowed(gray)
        n = AUGMENT + (FEW_TEETH_COPIES if teeth < MIN_TEETH else 0)
        copies.append(np.stack([features(augment(base, rng)) for _ in range(n)]))
    return np.stack(own), copies, np.array(fine)


def fit(own: np.ndarray, copies: list[np.ndarray], rows: np.ndarray) -> LayoutModel:
    """The layout model of films `rows` (indices) and their copies."""
    return LayoutModel.fit(np.vstack([own[rows], *(copies[i] for i in rows)]), COMPONENTS)


def out_of_fold(own: np.ndarray, copies: list[np.ndarray], keys: list[str], rows: np.ndarray) -> np.ndarray:
    """Scores of films `rows`, each by a model fitted on the other folds' films among `rows`."""
    fold = folds_by_group([keys[i] for i in rows], FOLDS)
    scores = np.zeros(len(rows))
    for f in range(FOLDS):
        model = fit(own, copies, rows[fold != f])
        scores[fold == f] = model.score(own[rows[fold == f]])
    return scores


def image_features(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([features(prepare(img).tensor[0]) for img in images])


def teeth_found(pipeline: PanoPipeline, pixels: np.ndarray) -> int:
    prepared = prepare(to_gray_float(pixels), pipeline.height, pipeline.width)
    logits = pipeline._infer(prepared.tensor).astype(np.float32)
    found, _ = pipeline._teeth(logits, prepared.scale_x, prepared.scale_y, (pixels.shape[1], pixels.shape[0]))
    return len(found)


def summary(scores: np.ndarray, threshold: float) -> str:
    return (
        f"n {len(scores):4d}  min {scores.min():.2f}  median {np.median(scores):.2f}  "
        f"max {scores.max():.2f}  "
        f"above the threshold {int((scores > threshold).sum())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="save the model and write the manifest")
    args = parser.parse_args()
    films = list(annotated_pano_films("train"))
    sets = np.array([s for s, _, _, _ in films])
    keys = [k for _, k, _, _ in films]
    few = np.array([t < MIN_TEETH for _, _, _, t in films])
    everything = np.arange(len(films))
    own, copies, fine = pano_features(films)
    oof = out_of_fold(own, copies, keys, everything)
    threshold = float(np.percentile(oof, THRESHOLD_QUANTILE))
    min_detail = DETAIL_SHARE * float(fine.min())
    print(
        f"training panoramics' detail: min {fine.min():.3f}, median {np.median(fine):.3f}; min_detail "
        f"{min_detail:.3f} ({DETAIL_SHARE} of the least)"
    )
    print(
        f"training panoramics, out-of-fold scores ({FOLDS} folds by film); threshold = their "
        f"{THRESHOLD_QUANTILE} % quantile = {threshold:.3f}"
    )
    for name in sorted(set(sets)):
        print(f"  {name:8s} {summary(oof[sets == name], threshold)}")
    print(f"  with fewer than {MIN_TEETH} annotated teeth: {summary(oof[few], threshold)}")
    print("each set left out of the fit (threshold from the other two's out-of-fold scores):")
    for name in sorted(set(sets)):
        keep = np.flatnonzero(sets != name)
        t = float(np.percentile(out_of_fold(own, copies, keys, keep), THRESHOLD_QUANTILE))
        left = fit(own, copies, keep).score(own[sets == name])
        print(
            f"  without {name:8s} threshold {t:.3f}; its training films {summary(left, t)} "
            f"({np.mean(left > t):.1%} refused)"
        )
    model = fit(own, copies, everything)
    inside = model.score(own)
    print(f"the shipped model on its own training films: {summary(inside, threshold)}; with fewer than "
          f"{MIN_TEETH} annotated teeth {summary(inside[few], threshold)} "
          f"{[k for k, r in zip(keys, few & (inside > threshold), strict=True) if r]}")
    engine = load_engine(MODEL, "onnxruntime", args.threads, "fp32")
    pipeline = PanoPipeline(engine, PanoConfig(film_check=False))
    print("training non-panoramics (the whole film check; teeth the tooth model finds on them):")
    negatives: dict[str, list[np.ndarray]] = {}
    for kind, path in ceph_films(train=True):
        negatives.setdefault(f"cephalograms {kind}", []).append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    for kind, img in non_radiographs.random_images(seed=1, n=80):
        negatives.setdefault(f"generated: {kind}", []).append(img)
    most = 0
    for name, images in negatives.items():
        scores = model.score(image_features(images))
        smooth = np.array([detail(prepare(img).tensor[0]) for img in images]) < min_detail
        teeth = [teeth_found(pipeline, img) for img in images]
        most = max(most, *teeth)
        print(
            f"  {name:28s} {summary(scores, threshold)}  too smooth {int(smooth.sum())}  refused "
            f"{int(((scores > threshold) | smooth).sum())}  teeth found: max {max(teeth)}"
        )
    print(f"most teeth found on a training non-panoramic: {most}; min_teeth {MIN_TEETH}")
    if args.write:
        path = MODEL / "film_check.npz"
        model.save(path)
        manifest_path = MODEL / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["film_check"] = {
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "threshold": round(threshold, 4),
            "min_teeth": MIN_TEETH,
            "min_detail": round(min_detail, 4),
            "features": "model input at 64 x 32 and its gradient magnitude at 64 x 32, each standardised",
            "model": f"probabilistic PCA, {COMPONENTS} components; "
            "score = negative log-likelihood per feature",
            "fitted_on": f"training films of tufts, ufba425 and dc1000 ({len(films)}) "
            f"with {AUGMENT} augmented copies each, {FEW_TEETH_COPIES} more for a film with fewer than "
            f"{MIN_TEETH} annotated teeth ({int(few.sum())})",
            "threshold_chosen": f"{THRESHOLD_QUANTILE} % quantile of the training films' out-of-fold scores "
            f"({FOLDS} folds by film)",
            "min_teeth_chosen": "twice the most teeth found on a training non-panoramic "
            "(cephalograms ISBI 001-100, "
            "Hamedan 001-070, generated images of seed 1)",
            "min_detail_chosen": f"{DETAIL_SHARE} of the least detail of a training panoramic",
            "command": "python -m pipelines.pano.evaluation.film_check_fit --write",
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"written: {path} and {manifest_path}")


if __name__ == "__main__":
    main()
