"""The labelled findings data of ../shared/data, one reader per set (used by eval_findings and by the
findings models' training, so both read the same films and the same truth):
- DC1000: caries masks (`caries_masks/<id>.png`) beside the films (`images/<id>.jpg`), ids are file stems;
- Tufts: one abnormality category's polygons (abnormalities.json) and the tooth polygons
  (annotations.json), ids are the COCO image ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipelines.pano.evaluation.lesions import coco_mask

SHARED_PANO = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pano"
DC1000_DIR = SHARED_PANO / "dc1000_caries"
TUFTS_DIR = SHARED_PANO / "tufts"


class Dc1000:
    """DC1000 caries films."""

    finding = "caries"

    def __init__(self, data_dir: Path = DC1000_DIR) -> None:
        self.data_dir = data_dir

    def ids(self) -> list[str]:
        return sorted(p.stem for p in (self.data_dir / "caries_masks").glob("*.png"))

    def pixels(self, image_id: str) -> np.ndarray:
        return cv2.imread(str(self.data_dir / "images" / f"{image_id}.jpg"), cv2.IMREAD_GRAYSCALE)

    def mask(self, image_id: str) -> np.ndarray:
        return cv2.imread(str(self.data_dir / "caries_masks" / f"{image_id}.png"), cv2.IMREAD_GRAYSCALE) > 127


class Tufts:
    """Tufts films with the expert's polygons of one abnormality category (`finding`)."""

    def __init__(self, finding: str = "periapical", data_dir: Path = TUFTS_DIR) -> None:
        self.finding = finding
        self.data_dir = data_dir
        teeth = json.loads((data_dir / "annotations.json").read_text())
        abnormal = json.loads((data_dir / "abnormalities.json").read_text())
        (category,) = [c["id"] for c in abnormal["categories"] if c["name"] == finding]
        self.images = {im["id"]: im for im in teeth["images"]}
        self.teeth: dict[int, list[dict]] = {}
        for ann in teeth["annotations"]:
            self.teeth.setdefault(ann["image_id"], []).append(ann)
        self.lesions: dict[int, list[dict]] = {}
        for ann in abnormal["annotations"]:
            if ann["category_id"] == category:
                self.lesions.setdefault(ann["image_id"], []).append(ann)

    def ids(self) -> list[int]:
        return sorted(self.images)

    def pixels(self, image_id: int) -> np.ndarray:
        return cv2.imread(str(self.data_dir / "images" / self.images[image_id]["file_name"]),
                          cv2.IMREAD_GRAYSCALE)

    def mask(self, image_id: int) -> np.ndarray:
        im = self.images[image_id]
        return coco_mask(self.lesions.get(image_id, []), im["height"], im["width"])

    def tooth_polygons(self, image_id: int) -> list[np.ndarray]:
        """The annotated teeth's outlines (input px), one per tooth."""
        return [np.asarray(ann["segmentation"][0], np.float64).reshape(-1, 2)
                for ann in self.teeth.get(image_id, [])]
