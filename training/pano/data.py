"""Pano data loading (UFBA-425, Tufts): images through the service's own preprocessing, labels
rasterised from COCO polygons. Both sets share the layout `annotations.json` + `images/`.

Everything is preloaded in RAM (1060 images at 256x512 are about 560 MB as float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipelines.pano.numbering import CLASS_FDI
from pipelines.pano.preprocess import INPUT_HEIGHT, INPUT_WIDTH, prepare

SHARED_PANO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pano"
DEFAULT_DATA = SHARED_PANO / "ufba425"
TUFTS_DATA = SHARED_PANO / "tufts"
SPLIT_PATH = Path(__file__).resolve().parent / "split.json"
TUFTS_SPLIT_PATH = Path(__file__).resolve().parent / "split_tufts.json"
FDI_TO_CLASS = {fdi: i for i, fdi in enumerate(CLASS_FDI) if fdi}


def load_coco(data_dir: Path) -> dict:
    return json.loads((data_dir / "annotations.json").read_text())


def rasterise(anns: list[dict], src_w: int, src_h: int, height: int, width: int) -> np.ndarray:
    """Class-index map at model size; larger teeth are drawn first so small ones stay visible."""
    label = np.zeros((height, width), np.uint8)
    sx, sy = width / src_w, height / src_h
    for ann in sorted(anns, key=lambda a: -a["area"]):
        for poly in ann["segmentation"]:
            pts = np.asarray(poly, np.float32).reshape(-1, 2) * [sx, sy]
            # shift=3: sub-pixel vertices (1/8 px) so the half-height rows stay faithful.
            fixed = np.round(pts * 8).astype(np.int32)
            cv2.fillPoly(label, [fixed], FDI_TO_CLASS[ann["category_id"]], shift=3)
    return label


def load_split(data_dir: Path, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N,1,H,W) float32 and labels (N,H,W) uint8 for the given image ids, in that order."""
    coco = load_coco(data_dir)
    images = {im["id"]: im for im in coco["images"]}
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    xs = np.zeros((len(ids), 1, INPUT_HEIGHT, INPUT_WIDTH), np.float32)
    ys = np.zeros((len(ids), INPUT_HEIGHT, INPUT_WIDTH), np.uint8)
    for k, image_id in enumerate(ids):
        im = images[image_id]
        pixels = cv2.imread(str(data_dir / "images" / im["file_name"]), cv2.IMREAD_GRAYSCALE)
        xs[k] = prepare(pixels).tensor
        ys[k] = rasterise(by_image.get(image_id, []), im["width"], im["height"], INPUT_HEIGHT, INPUT_WIDTH)
    return xs, ys


def read_split(path: Path = SPLIT_PATH) -> dict:
    return json.loads(path.read_text())
