"""Lesion-level and pixel metrics for findings (used by eval_findings and by training's validation).

A lesion is an 8-connected component of a mask (ground truth) or one reported finding (prediction).
Predicted and true lesions are matched one to one, greedily by IoU, at IoU >= `iou` (0.1 by
default: lesions are small, so a few pixels of outline disagreement halve their IoU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MATCH_IOU = 0.1
# Lesion size bins (px of the image the masks are in) for recall by size.
SIZE_BINS = (0, 40, 100, 200, 400, 1000)


@dataclass
class Counts:
    """Accumulates lesion matches and pixel overlaps over images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    inter: float = 0.0  # pixel intersection, pooled
    pred_px: float = 0.0
    gt_px: float = 0.0
    # (area in px, matched) of every true lesion.
    sizes: list[tuple[int, bool]] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in ("tp", "fp", "fn", "inter", "pred_px", "gt_px"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sizes += other.sizes

    def recall_by_size(self) -> dict[str, dict[str, float]]:
        """{"lo-hi": {"lesions": n, "recall": r}} over SIZE_BINS (the last bin is open)."""
        out = {}
        edges = [*SIZE_BINS, None]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            found = [m for a, m in self.sizes if a >= lo and (hi is None or a < hi)]
            out[f"{lo}-{hi or ''}"] = {"lesions": len(found), "recall": sum(found) / max(len(found), 1)}
        return out

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / max(p + r, 1e-9)

    @property
    def dice(self) -> float:
        """Pixel Dice; 1 when both masks are empty (nothing to find, nothing found)."""
        total = self.pred_px + self.gt_px
        return 1.0 if total == 0 else 2 * self.inter / total


def coco_mask(anns: list[dict], height: int, width: int) -> np.ndarray:
    """bool (height, width): the COCO polygons of `anns` filled at full resolution (1/8 px vertices)."""
    mask = np.zeros((height, width), np.uint8)
    for ann in anns:
        for poly in ann["segmentation"]:
            pts = np.round(np.asarray(poly, np.float64).reshape(-1, 2) * 8).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, shift=3)
    return mask > 0


def components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of lesions, int32 label map) of a bool mask, 8-connected."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return n - 1, labels


def match(pred: np.ndarray, n_pred: int, gt: np.ndarray, n_gt: int, iou: float = MATCH_IOU) -> set[int]:
    """Greedy one-to-one matches at IoU >= `iou` between two label maps (0 = background): the
    matched true lesions (0-based)."""
    return {j for _, j in pairs(pred, n_pred, gt, n_gt, iou)}


def matched_predictions(
    pred: np.ndarray, n_pred: int, gt_mask: np.ndarray, iou: float = MATCH_IOU
) -> set[int]:
    """The predicted lesions (0-based labels - 1 of `pred`) that `compare` counts as true positives."""
    n_gt, gt = components(gt_mask)
    return {i for i, _ in pairs(pred, n_pred, gt, n_gt, iou)}


def pairs(
    pred: np.ndarray, n_pred: int, gt: np.ndarray, n_gt: int, iou: float = MATCH_IOU
) -> list[tuple[int, int]]:
    """The (predicted, true) lesion pairs (0-based) of `match`."""
    if n_pred == 0 or n_gt == 0:
        return []
    joint = np.bincount(pred.ravel().astype(np.int64) * (n_gt + 1) + gt.ravel(),
                        minlength=(n_pred + 1) * (n_gt + 1)).reshape(n_pred + 1, n_gt + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    ious = inter / np.maximum(union, 1)
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for flat in np.argsort(-ious, axis=None):
        i, j = divmod(int(flat), n_gt)
        if ious[i, j] < iou:
            break
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def compare(pred: np.ndarray, n_pred: int, gt_mask: np.ndarray, iou: float = MATCH_IOU) -> Counts:
    """Counts for one image: `pred` is a label map of predicted lesions (0 = none), `gt_mask` bool."""
    n_gt, gt = components(gt_mask)
    matched = match(pred, n_pred, gt, n_gt, iou)
    tp = len(matched)
    pred_mask = pred > 0
    areas = np.bincount(gt.ravel(), minlength=n_gt + 1)[1:]
    return Counts(tp=tp, fp=n_pred - tp, fn=n_gt - tp, inter=float((pred_mask & gt_mask).sum()),
                  pred_px=float(pred_mask.sum()), gt_px=float(gt_mask.sum()),
                  sizes=[(int(a), j in matched) for j, a in enumerate(areas)])
