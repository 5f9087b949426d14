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
# ...unless it is at least this share of that bigger one's area and of its height: then it is a tooth
# of its own beside it (small teeth, the lower incisors above all, are below half the median tooth,
# and two of them labelled apart were merged into one outline that matched neither). Read off the
# merges on the training films of both sets (models/pano-teeth/MODEL_CARD.md, Instances).
OWN_TOOTH_AREA_SHARE = 0.5
OWN_TOOTH_HEIGHT_SHARE = 0.8
# A tooth's own classes: see own_classes.
OWN_CLASS_SHARE = 0.1


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
    bounds: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the mask
    # Area and height of the component it grew from (before fragments were merged into it).
    core: tuple[int, int]

    @property
    def foreground(self) -> float:
        """Mean probability of being any tooth: the detection score."""
        return float(1.0 - self.probs[0])

    @property
    def box(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.bounds
        return x0, y0, x1 - x0, y1 - y0


def own_classes(mean_probs: np.ndarray, channels: int) -> np.ndarray:
    """Channel indices that are a tooth's own, from its mean softmax over its pixels: those with at
    least OWN_CLASS_SHARE of its mean tooth probability (its label, and numbers the model hesitated
    between for the same tooth), among the first `channels`."""
    foreground = 1.0 - float(mean_probs[0])
    return np.flatnonzero(mean_probs[1:channels] >= OWN_CLASS_SHARE * foreground) + 1


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (C, H, W)."""
    z = logits - logits.max(axis=0, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=0, keepdims=True)
    return z


def argmax_channels(probs: np.ndarray) -> np.ndarray:
    """probs.argmax(axis=0) (first channel on ties) at a third of its cost: numpy's argmax over the
    outer axis copies the array, one comparison per channel with the (fast) maximum does not."""
    top = probs.max(axis=0)
    labels = np.zeros(top.shape, np.intp)
    for c in range(len(probs) - 1, 0, -1):
        labels[probs[c] == top] = c
    return labels


def _make(label: int, mask: np.ndarray, probs: np.ndarray, bounds: tuple[int, int, int, int],
          core: tuple[int, int] | None = None) -> Instance:
    """Instance of `mask` (whole frame), whose pixels all lie within `bounds`; work on that window.
    `core` defaults to the mask's own area and height."""
    x0, y0, x1, y1 = bounds
    window = mask[y0:y1, x0:x1]
    ys, xs = np.nonzero(window)
    return Instance(label=label, mask=mask, probs=probs[:, y0:y1, x0:x1][:, window].mean(axis=1),
                    area=len(xs), cx=float(xs.mean()) + x0, cy=float(ys.mean()) + y0, bounds=bounds,
                    core=core or (len(xs), y1 - y0))


def extract(probs: np.ndarray) -> list[Instance]:
    """Connected components (8-connected) of every non-background class of the argmax map."""
    labels = argmax_channels(probs)
    found: list[Instance] = []
    for c in np.flatnonzero(np.bincount(labels.ravel(), minlength=len(probs))[1:]) + 1:
        # Components within the class's bounding window (connectedComponentsWithStats costs 14x
        # connectedComponents in this OpenCV, so the boxes come from the window's pixels).
        x, y, w, h = cv2.boundingRect((labels == c).view(np.uint8))
        n, comp = cv2.connectedComponents((labels[y : y + h, x : x + w] == c).view(np.uint8), connectivity=8)
        ys, xs = np.nonzero(comp)
        ks = comp[ys, xs]
        for k in range(1, n):
            sel = ks == k
            kx, ky = xs[sel], ys[sel]
            x0, y0, x1, y1 = int(kx.min()), int(ky.min()), int(kx.max()) + 1, int(ky.max()) + 1
            mask = np.zeros(labels.shape, bool)
            mask[y + y0 : y + y1, x + x0 : x + x1] = comp[y0:y1, x0:x1] == k
            found.append(_make(int(c), mask, probs, (x + x0, y + y0, x + x1, y + y1)))
    if not found:
        return []
    median = float(np.median([i.area for i in found]))
    found = _merge_fragments(found, probs, FRAGMENT_SHARE * median)
    floor = max(MIN_AREA_PX, MIN_AREA_SHARE * median)
    return [i for i in found if i.area >= floor]


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _own_tooth(piece: Instance, host: Instance) -> bool:
    """A component beside `host` as big and as tall as a tooth of its own (OWN_TOOTH_*), measured
    against the component `host` grew from: pieces merged into it earlier do not count, or one
    incisor merged into a canine would make the next one too small beside it."""
    host_area, host_height = host.core
    big_enough = piece.area >= OWN_TOOTH_AREA_SHARE * host_area
    return big_enough and piece.bounds[3] - piece.bounds[1] >= OWN_TOOTH_HEIGHT_SHARE * host_height


def _merge_fragments(found: list[Instance], probs: np.ndarray, small: float) -> list[Instance]:
    kernel = np.ones((3, 3), np.uint8)
    h, w = probs.shape[1:]
    found = sorted(found, key=lambda i: i.area)
    k = 0
    while k < len(found):
        frag = found[k]
        if frag.area >= small:
            break
        # The one-pixel ring around the fragment, within its window grown by one pixel.
        x0, y0, x1, y1 = frag.bounds
        x0, y0, x1, y1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)
        inside = frag.mask[y0:y1, x0:x1]
        ring = cv2.dilate(inside.view(np.uint8), kernel).astype(bool) & ~inside
        touching = [
            (int((o.mask[y0:y1, x0:x1] & ring).sum()), j)
            for j, o in enumerate(found)
            if j != k and o.area > frag.area
            and o.bounds[0] < x1 and o.bounds[2] > x0 and o.bounds[1] < y1 and o.bounds[3] > y0
        ]
        touching = [t for t in touching if t[0] > 0]
        if not touching:
            k += 1
            continue
        _, j = max(touching)
        host = found[j]
        if _own_tooth(frag, host):
            k += 1
            continue
        bounds = _union(host.bounds, frag.bounds)
        found[j] = _make(host.label, host.mask | frag.mask, probs, bounds, host.core)
        del found[k]
        found.sort(key=lambda i: i.area)
        k = 0
    return found
