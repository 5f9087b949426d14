"""Tooth outlines in the coordinates of the submitted image.

The instance mask is at model resolution (256 x 512 for images up to ~3000 px wide), so its outline
is refined on an upsampled crop: the foreground probability (smooth, sub-pixel towards the bone)
limited to the tooth's own territory (its mask grown by two pixels, minus other teeth). With the
tooth's own class probability (`own`), the border with a neighbouring tooth is sub-pixel too: it is
where the up-sampled own probability reaches half the foreground probability, instead of the
model-pixel edge of the neighbour's mask (which still bounds a neighbour of the same class).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Crop margin (model px) and territory growth (model px).
MARGIN = 3
GROW = 2
MAX_UPSAMPLE = 8.0


@dataclass(frozen=True)
class Outline:
    polygon: list[list[float]]  # [[x, y], ...] in input pixels
    bbox: list[float]  # [x, y, w, h] in input pixels
    area_px: float


def model_to_input(u: np.ndarray, scale: float) -> np.ndarray:
    """Pixel-centre mapping of cv2.resize between model and input frames."""
    return (u + 0.5) * scale - 0.5


def model_to_input_affine(scale_x: float, scale_y: float) -> np.ndarray:
    """`model_to_input` as a 2 x 3 affine map (its offset is where model pixel 0 lands)."""
    x0, y0 = model_to_input(np.zeros(2), np.array([scale_x, scale_y]))
    return np.array([[scale_x, 0.0, x0], [0.0, scale_y, y0]])


def finer_grid(
    matrix: np.ndarray, fx: float, fy: float, origin: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """The affine map (2 x 3, axis-aligned) of a grid fx by fy times finer than the grid of
    `matrix` (which maps that grid's pixels to input pixels), starting at its pixel `origin`
    (x, y): pixel-centre mapping, as cv2.resize up-samples a window of the grid."""
    sx, sy = matrix[0, 0], matrix[1, 1]
    return np.array([[sx / fx, 0.0, matrix[0, 2] + sx * (origin[0] + 0.5 / fx - 0.5)],
                     [0.0, sy / fy, matrix[1, 2] + sy * (origin[1] + 0.5 / fy - 0.5)]])


def crop_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """x0, x1, y0, y1 of the mask's bounding box grown by MARGIN, inside the frame."""
    h, w = mask.shape
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))  # a C scan; np.nonzero costs 30x more
    return max(x - MARGIN, 0), min(x + bw + MARGIN, w), max(y - MARGIN, 0), min(y + bh + MARGIN, h)


def outline(
    mask: np.ndarray,
    others: np.ndarray,
    foreground: np.ndarray,
    scale_x: float,
    scale_y: float,
    image_size: tuple[int, int],
    own: np.ndarray | None = None,
) -> Outline | None:
    """Outline of `mask` (bool, model frame); `others` marks pixels of other teeth.

    `foreground` is 1 - P(background) in the model frame; `image_size` is (width, height);
    `own`, when given, is the probability of this tooth's classes, cropped to `crop_box(mask)`.
    """
    x0, x1, y0, y1 = crop_box(mask)
    mine = mask[y0:y1, x0:x1]
    grown = cv2.dilate(mine.astype(np.uint8), np.ones((2 * GROW + 1, 2 * GROW + 1), np.uint8)).astype(bool)
    fg_crop = foreground[y0:y1, x0:x1].astype(np.float32)
    blocked = others[y0:y1, x0:x1]
    if own is not None:
        # Only neighbours that are mostly of this tooth's classes bound it at the model grid.
        blocked = blocked & (own >= 0.5 * fg_crop)
    territory = (grown & ~blocked) | mine
    fx = float(np.clip(scale_x, 1.0, MAX_UPSAMPLE))
    fy = float(np.clip(scale_y, 1.0, MAX_UPSAMPLE))
    size = (max(int(round((x1 - x0) * fx)), 1), max(int(round((y1 - y0) * fy)), 1))
    fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)
    fg_up = cv2.resize(fg_crop, size, interpolation=cv2.INTER_LINEAR)
    terr_up = cv2.resize(territory.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    keep = (fg_up > 0.5) & (terr_up > 0.5)
    if own is not None:
        keep &= cv2.resize(own.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5 * fg_up
    # Up-sampled crop pixel -> model frame -> input frame (model_to_input), as one affine map.
    to_input = finer_grid(model_to_input_affine(scale_x, scale_y), fx, fy, (x0, y0))
    return affine_outline(keep.astype(np.uint8), to_input, image_size, 0.5 * min(fx, fy))


def affine_outline(
    keep: np.ndarray, to_input: np.ndarray, image_size: tuple[int, int], epsilon: float
) -> Outline | None:
    """Outline of the largest 8-connected component of `keep` (uint8, a crop grid) in input pixels;
    `to_input` maps crop px to input px (2 x 3, axis-aligned), `epsilon` (crop px) simplifies it."""
    # connectedComponentsWithStats costs 14x connectedComponents in this OpenCV: sizes by bincount.
    n, comp = cv2.connectedComponents(keep, connectivity=8)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(np.bincount(comp.ravel(), minlength=n)[1:]))
    keep = (comp == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(keep, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    contour = cv2.approxPolyDP(contour, epsilon, True)[:, 0, :].astype(np.float64)
    if len(contour) < 3:
        return None
    width, height = image_size
    px = np.clip(to_input[0, 0] * contour[:, 0] + to_input[0, 2], 0, width - 1)
    py = np.clip(to_input[1, 1] * contour[:, 1] + to_input[1, 2], 0, height - 1)
    polygon = [[round(float(a), 1), round(float(b), 1)] for a, b in zip(px, py, strict=True)]
    area = float(keep.sum()) * to_input[0, 0] * to_input[1, 1]
    bx, by = float(px.min()), float(py.min())
    bbox = [round(bx, 1), round(by, 1), round(float(px.max()) - bx, 1), round(float(py.max()) - by, 1)]
    return Outline(polygon=polygon, bbox=bbox, area_px=round(area, 1))
