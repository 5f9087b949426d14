"""From per-pixel logits to tooth instances: connected components of each class's argmax region."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Components smaller than this share of the median tooth are noise or slivers between teeth...
MIN_AREA_SHARE = 0.12
# ...and never smaller than this many model pixels.
MIN_AREA_PX = 20
# A component below this share of the median that touches a bigger one is a piece of that tooth
# with a wrong label (a tooth split between two numbers), so it is merged, not kept.
FRAGMENT_SHARE = 0.5


@dataclass
class Instance:
    """One tooth candidate at model resolution.

    `probs` is the mean softmax over the component (channel order of numbering.CLASS_FDI); the
    numbering rules read it to relabel a tooth. `label` is the current class index.
    """

    label: int
    mask: np.ndarray  # bool (H, W), whole model frame
    probs: np.ndarray  # (C,)
    area: int
    cx: float
    cy: float

    @property
    def foreground(self) -> float:
        """Mean probability of being any tooth: the detection score."""
        return float(1.0 - self.probs[0])

    @property
    def box(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (C, H, W)."""
    z = logits - logits.max(axis=0, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=0, keepdims=True)
    return z


def _make(label: int, mask: np.ndarray, probs: np.ndarray) -> Instance:
    ys, xs = np.nonzero(mask)
    return Instance(label=label, mask=mask, probs=probs[:, mask].mean(axis=1), area=int(mask.sum()),
                    cx=float(xs.mean()), cy=float(ys.mean()))


def extract(probs: np.ndarray) -> list[Instance]:
    """Connected components (8-connected) of every non-background class of the argmax map."""
    labels = probs.argmax(axis=0)
    found: list[Instance] = []
    for c in np.unique(labels):
        if c == 0:
            continue
        n, comp = cv2.connectedComponents((labels == c).astype(np.uint8), connectivity=8)
        found.extend(_make(int(c), comp == k, probs) for k in range(1, n))
    if not found:
        return []
    median = float(np.median([i.area for i in found]))
    found = _merge_fragments(found, probs, FRAGMENT_SHARE * median)
    floor = max(MIN_AREA_PX, MIN_AREA_SHARE * median)
    return [i for i in found if i.area >= floor]


def _merge_fragments(found: list[Instance], probs: np.ndarray, small: float) -> list[Instance]:
    kernel = np.ones((3, 3), np.uint8)
    found = sorted(found, key=lambda i: i.area)
    k = 0
    while k < len(found):
        frag = found[k]
        if frag.area >= small:
            break
        ring = cv2.dilate(frag.mask.astype(np.uint8), kernel).astype(bool) & ~frag.mask
        touching = [
            (int((o.mask & ring).sum()), j) for j, o in enumerate(found) if j != k and o.area > frag.area
        ]
        touching = [t for t in touching if t[0] > 0]
        if not touching:
            k += 1
            continue
        _, j = max(touching)
        host = found[j]
        found[j] = _make(host.label, host.mask | frag.mask, probs)
        del found[k]
        found.sort(key=lambda i: i.area)
        k = 0
    return found
