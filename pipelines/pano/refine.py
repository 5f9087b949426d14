"""Per-tooth outline refinement (model `pano-teeth-refine`).

The whole-film model sees a panoramic at 512 x 256, about 3 film pixels per model pixel on a
Tufts film and 6 on a DC1000 one, so its outlines are blurred at that scale. Each tooth it found is
cut out of the film again at about twice to three times that resolution, together with the
whole-film model's probability of the tooth's own classes (where it is, and where its neighbours
are), and a small U-Net draws that tooth's mask in the crop. Training (`training/pano_refine`) and
the service cut crops with the same functions here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engines.base import Engine
from engines.manifest import ModelManifest
from pipelines.base_pipeline import infer
from pipelines.pano.outline import Outline, affine_outline, finer_grid
from pipelines.pano.preprocess import standardise, to_gray_float, window

REFINE_MODEL = "pano-teeth-refine"
# The film is brought to at most this width first (INTER_AREA): a Tufts film (1615 px) keeps its
# size, a 2943-px DC1000 film is halved, so teeth fill their crops alike on every device.
FRAME_WIDTH = 1600
# The crop is the tooth's box grown by these shares of its width and height on each side: enough
# bone and neighbour to see where the tooth ends, and room for a box that is off. The whole-film
# outlines' boxes on Tufts val films are off by 10 % (std) of the tooth's width at each side and
# 7 % of its height; 95 % of them by less than 19 % and 12 %.
GROW_X = 0.3
GROW_Y = 0.15
# A refined mask that overlaps the whole-film outline less than this (IoU) is a refiner failure
# (a crop of the wrong tooth, an empty mask); the whole-film outline is kept.
MIN_AGREEMENT = 0.3
# The mask is outlined on the crop grid up-sampled this many times (bilinear logits): a contour
# through the boundary pixels' centres lies half a pixel inside the mask, at the crop grid 0.7-1 film
# px all round a Tufts tooth (Tufts val Dice 0.8788 at 1, 0.8803 at 2, 0.8808 at 4).
OUTLINE_UPSAMPLE = 4
# The polygon leaves the mask's outline by at most this many input pixels (approxPolyDP): finer
# than any expert's outline, and a tenth of the vertices of a polygon through every step of the
# up-sampled grid (about 270 per tooth on a DC1000 film).
OUTLINE_TOLERANCE_PX = 0.5


@dataclass(frozen=True)
class Frame:
    """The film in the refinement frame: percentile window in [0, 1], at most FRAME_WIDTH wide."""

    film: np.ndarray  # float32 (H, W)
    scale_x: float  # input px per frame px
    scale_y: float


def make_frame(pixels: np.ndarray) -> Frame:
    gray = to_gray_float(pixels)
    h, w = gray.shape
    if w > FRAME_WIDTH:
        fh = max(int(round(h * FRAME_WIDTH / w)), 1)
        gray = cv2.resize(gray, (FRAME_WIDTH, fh), interpolation=cv2.INTER_AREA)
    fh, fw = gray.shape
    return Frame(film=window(gray), scale_x=w / fw, scale_y=h / fh)


def crop_matrix(box: Sequence[float], width: int, height: int) -> np.ndarray:
    """2 x 3 affine from crop pixels to frame pixels for a tooth box [x, y, w, h] (frame px)."""
    x, y, w, h = (float(v) for v in box)
    gx, gy = GROW_X * w, GROW_Y * h
    sx, sy = (w + 2 * gx) / width, (h + 2 * gy) / height
    # Crop pixel i covers [x - gx + i * sx, x - gx + (i + 1) * sx) of the frame, read with pixel
    # j covering [j - 0.5, j + 0.5) less half a pixel: the crop sits half a frame pixel up and left
    # of the box. The trained model and its labels share this grid, so it is kept as trained.
    return np.array([[sx, 0.0, x - gx + 0.5 * sx - 0.5], [0.0, sy, y - gy + 0.5 * sy - 0.5]])


def cut(image: np.ndarray, matrix: np.ndarray, width: int, height: int, border: int) -> np.ndarray:
    """Bilinear crop of `image` through `matrix` (crop px -> image px)."""
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=0.0)


def model_matrix(
    matrix: np.ndarray, frame_per_model: tuple[float, float], origin: tuple[int, int]
) -> np.ndarray:
    """Crop px -> pixels of a region of the whole-film model frame that starts at `origin` (x, y);
    `frame_per_model` is frame px per model px on each axis."""
    sx, sy = frame_per_model
    ox, oy = origin
    return np.array([
        [matrix[0, 0] / sx, 0.0, (matrix[0, 2] + 0.5) / sx - 0.5 - ox],
        [0.0, matrix[1, 1] / sy, (matrix[1, 2] + 0.5) / sy - 0.5 - oy],
    ])


def model_region(matrix: np.ndarray, frame_per_model: tuple[float, float], width: int, height: int,
                 shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the model-frame pixels a crop reads (one pixel more each side), inside `shape`."""
    m = model_matrix(matrix, frame_per_model, (0, 0))
    xs = m[0, 0] * np.array([0, width - 1]) + m[0, 2]
    ys = m[1, 1] * np.array([0, height - 1]) + m[1, 2]
    h, w = shape
    x0, x1 = int(np.clip(np.floor(xs[0]) - 1, 0, w - 1)), int(np.clip(np.ceil(xs[1]) + 2, 1, w))
    y0, y1 = int(np.clip(np.floor(ys[0]) - 1, 0, h - 1)), int(np.clip(np.ceil(ys[1]) + 2, 1, h))
    return x0, y0, x1, y1


def crop_inputs(
    frame: Frame,
    matrix: np.ndarray,
    own: np.ndarray,
    origin: tuple[int, int],
    frame_per_model: tuple[float, float],
    width: int,
    height: int,
    augment: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """(2, height, width) float32: the standardised film crop and the tooth's own-class probability
    (`own`, a region of the model frame starting at `origin`) on the same crop grid. `augment`
    (training only) changes the [0, 1] film crop before it is standardised."""
    film = cut(frame.film, matrix, width, height, cv2.BORDER_REPLICATE)
    film = standardise(film if augment is None else augment(film))
    prior = cut(own.astype(np.float32), model_matrix(matrix, frame_per_model, origin), width, height,
                cv2.BORDER_CONSTANT)
    return np.stack([film, prior])


def crop_to_input(matrix: np.ndarray, frame: Frame) -> np.ndarray:
    """Crop px -> input px (frame px -> input px is the pixel-centre mapping of the resize)."""
    return np.array([
        [matrix[0, 0] * frame.scale_x, 0.0, (matrix[0, 2] + 0.5) * frame.scale_x - 0.5],
        [0.0, matrix[1, 1] * frame.scale_y, (matrix[1, 2] + 0.5) * frame.scale_y - 0.5],
    ])


def fine_mask(logits: np.ndarray, mask: np.ndarray, factor: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask read on the grid `factor` times finer (bilinear logits above 0), over the window of
    `mask` grown by one pixel (the rest of the crop is outside it; a third of the cost of the whole
    crop), and the window's origin on the crop grid."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    x0, y0 = max(x - 1, 0), max(y - 1, 0)
    x1, y1 = min(x + w + 1, mask.shape[1]), min(y + h + 1, mask.shape[0])
    window = logits[y0:y1, x0:x1]
    fine = cv2.resize(window, ((x1 - x0) * factor, (y1 - y0) * factor), interpolation=cv2.INTER_LINEAR)
    return (fine > 0.0).view(np.uint8), (x0, y0)


def frame_box(bbox: Sequence[float], frame: Frame) -> list[float]:
    """An input-pixel box [x, y, w, h] in frame pixels."""
    x, y, w, h = (float(v) for v in bbox)
    sx, sy = frame.scale_x, frame.scale_y
    return [(x + 0.5) / sx - 0.5, (y + 0.5) / sy - 0.5, w / sx, h / sy]


def agreement(mask: np.ndarray, polygon: Sequence[Sequence[float]], to_input: np.ndarray) -> float:
    """IoU, on the crop grid, of a crop mask and an input-pixel polygon."""
    pts = np.asarray(polygon, np.float64)
    cx = (pts[:, 0] - to_input[0, 2]) / to_input[0, 0]
    cy = (pts[:, 1] - to_input[1, 2]) / to_input[1, 1]
    other = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(other, [np.round(np.stack([cx, cy], 1) * 8).astype(np.int32)], 1, shift=3)
    inter = int((mask & other.astype(bool)).sum())
    union = int((mask | other.astype(bool)).sum())
    return inter / union if union else 0.0


class ToothRefiner:
    """The refinement model's frame (from its manifest); runs it on every tooth of a film, in
    batches the manifest allows."""

    def __init__(self, manifest: ModelManifest) -> None:
        spec = manifest.inputs[0]
        self.input_name = spec.name
        self.output_name = manifest.outputs[0].name
        self.height, self.width = int(spec.shape[2]), int(spec.shape[3])
        self.max_batch = max(manifest.batch_max, 1)

    def refine(
        self,
        engine: Engine,
        pixels: np.ndarray,
        probs: np.ndarray,
        teeth: Sequence[tuple[np.ndarray, Outline]],
        model_scale: tuple[float, float],
    ) -> list[Outline]:
        """Refined outlines (input px) for `teeth`, each (its own classes, its whole-film outline);
        `probs` is the whole-film model's softmax (C, H, W), `model_scale` input px per model px.
        A tooth whose refinement fails keeps its whole-film outline."""
        if not teeth:
            return []
        frame = make_frame(pixels)
        per_model = (model_scale[0] / frame.scale_x, model_scale[1] / frame.scale_y)
        matrices, batch = [], []
        for mine, shape in teeth:
            matrix = crop_matrix(frame_box(shape.bbox, frame), self.width, self.height)
            x0, y0, x1, y1 = model_region(matrix, per_model, self.width, self.height, probs.shape[1:])
            own = probs[mine, y0:y1, x0:x1].sum(axis=0)
            batch.append(crop_inputs(frame, matrix, own, (x0, y0), per_model, self.width, self.height))
            matrices.append(matrix)
        stacked = np.stack(batch)
        logits = np.concatenate([
            infer(engine, {self.input_name: stacked[i : i + self.max_batch]})[self.output_name]
            for i in range(0, len(stacked), self.max_batch)
        ])
        size = (pixels.shape[1], pixels.shape[0])
        out = []
        for k, (_, shape) in enumerate(teeth):
            mask = logits[k, 0] > 0.0
            to_input = crop_to_input(matrices[k], frame)
            refined = None
            if mask.any() and agreement(mask, shape.polygon, to_input) >= MIN_AGREEMENT:
                fine, origin = fine_mask(logits[k, 0], mask, OUTLINE_UPSAMPLE)
                fine_matrix = finer_grid(matrices[k], OUTLINE_UPSAMPLE, OUTLINE_UPSAMPLE, origin)
                fine_to_input = crop_to_input(fine_matrix, frame)
                tolerance = OUTLINE_TOLERANCE_PX / min(fine_to_input[0, 0], fine_to_input[1, 1])
                refined = affine_outline(fine, fine_to_input, size, tolerance)
            out.append(refined or shape)
        return out
