"""Numbering rules: one tooth per FDI number, quadrants and order consistent with the anatomy.

Image geometry of a panoramic: the patient's right is on the image's left, so quadrants 1 (upper)
and 4 (lower) lie left of the midline, 2 and 3 right of it; upper teeth lie above lower ones.
Within a quadrant tooth numbers grow with the distance from the midline.

Steps: (1) find the midline that best agrees with the model's left/right evidence and move teeth
that sit on the wrong side; (2) move teeth whose height contradicts their upper/lower label
among neighbours; (3) per quadrant and per dentition (permanent 1-8, primary 1-5), choose strictly
increasing numbers (from the midline out) that maximise the summed log evidence of tooth
position, which also resolves duplicates. Permanent and primary teeth are numbered separately, so a
primary tooth and its permanent successor (mixed dentition) can both be reported. A candidate's
dentition is the one with more probability mass; its side and jaw are shared by both dentitions
(quadrant 5 lies where 1 does, 6 where 2, 7 where 3, 8 where 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pipelines.pano.numbering import (
    CLASS_FDI,
    PERMANENT_QUADRANT,
    PRIMARY_QUADRANT,
    is_primary,
    side_quadrant,
)

EPS = 1e-6
# Log-evidence cost of discarding a candidate instead of numbering it (only used when a quadrant
# has more candidates than any numbering can take, or one fits nowhere).
DROP_COST = math.log(1e-4)
# Horizontal window, as a share of the image width, in which upper and lower neighbours are compared.
JAW_WINDOW = 0.12


class Candidate(Protocol):
    label: int
    probs: np.ndarray
    cx: float
    cy: float


# Teeth per quadrant of each dentition (primary = True).
TEETH_PER_QUADRANT = {False: 8, True: 5}


def quadrant(label: int) -> int:
    """Side-and-jaw quadrant 1-4 of a channel (primary channels map to the permanent quadrant)."""
    return side_quadrant(CLASS_FDI[label])


def class_of(q: int, tooth: int) -> int:
    return CLASS_FDI.index(10 * q + tooth)


def _channels(quads: tuple[int, ...]) -> list[int]:
    """Channels of every tooth (both dentitions) in the given side-and-jaw quadrants."""
    return [k for k, f in enumerate(CLASS_FDI) if f and side_quadrant(f) in quads]


RIGHT_CHANNELS = _channels((1, 4))
LEFT_CHANNELS = _channels((2, 3))
PRIMARY_CHANNELS = [k for k, f in enumerate(CLASS_FDI) if f and is_primary(f)]
PERMANENT_CHANNELS = [k for k, f in enumerate(CLASS_FDI) if f and not is_primary(f)]


def _side_evidence(c: Candidate) -> float:
    """P(patient's right = image left) among tooth classes."""
    right = float(c.probs[RIGHT_CHANNELS].sum())
    left = float(c.probs[LEFT_CHANNELS].sum())
    return right / max(right + left, EPS)


def is_primary_candidate(c: Candidate) -> bool:
    """More probability mass on the primary than on the permanent channels."""
    return float(c.probs[PRIMARY_CHANNELS].sum()) > float(c.probs[PERMANENT_CHANNELS].sum())


def find_midline(cands: Sequence[Candidate], width: float) -> float:
    """x that maximises the log evidence of every tooth's side, with a weak prior at the centre."""
    xs = sorted(c.cx for c in cands)
    options = [xs[0] - 1.0] + [(a + b) / 2 for a, b in zip(xs, xs[1:], strict=False)] + [xs[-1] + 1.0]
    evidence = [(c.cx, _side_evidence(c)) for c in cands]

    def score(m: float) -> float:
        fit = sum(math.log(max(r if x < m else 1 - r, EPS)) for x, r in evidence)
        return fit - 0.5 * ((m - width / 2) / (0.1 * width)) ** 2

    return max(options, key=score)


def _fix_sides(cands: Sequence[Candidate], midline: float, quads: list[int]) -> None:
    swap = {1: 2, 2: 1, 3: 4, 4: 3}
    for k, c in enumerate(cands):
        on_image_left = c.cx < midline
        if on_image_left != (quads[k] in (1, 4)):
            quads[k] = swap[quads[k]]


def _fix_jaws(cands: Sequence[Candidate], width: float, quads: list[int]) -> None:
    """An 'upper' tooth lower than its upper neighbours and at the height of its lower ones
    (or the reverse) changes jaw."""
    swap = {1: 4, 4: 1, 2: 3, 3: 2}
    new = quads[:]
    for k, c in enumerate(cands):
        near = [j for j, o in enumerate(cands) if j != k and abs(o.cx - c.cx) < JAW_WINDOW * width]
        upper = [cands[j].cy for j in near if quads[j] in (1, 2)]
        lower = [cands[j].cy for j in near if quads[j] in (3, 4)]
        if not upper or not lower:
            continue
        mu, ml = float(np.mean(upper)), float(np.mean(lower))
        if mu >= ml:
            continue  # neighbours themselves inconsistent; leave it to the model
        is_upper = quads[k] in (1, 2)
        closer_to_lower = abs(c.cy - ml) < abs(c.cy - mu)
        if is_upper == closer_to_lower:
            new[k] = swap[quads[k]]
    quads[:] = new


def _position_log_evidence(c: Candidate, tooth: int, primary: bool) -> float:
    """Evidence that this is tooth position `tooth` of its dentition in any quadrant (quadrant is
    fixed geometrically), conditional on that dentition."""
    p = c.probs
    quads = PRIMARY_QUADRANT.values() if primary else PERMANENT_QUADRANT.values()
    mass = max(float(p[PRIMARY_CHANNELS if primary else PERMANENT_CHANNELS].sum()), EPS)
    return math.log(max(sum(float(p[class_of(q, tooth)]) for q in quads) / mass, EPS))


def _assign_quadrant(ordered: Sequence[Candidate], primary: bool = False) -> list[int | None]:
    """Strictly increasing tooth numbers 1..8 (primary 1..5) for candidates ordered from the midline
    out (None = dropped)."""
    n, top = len(ordered), TEETH_PER_QUADRANT[primary]
    neg = -math.inf
    # best[i][t]: best score numbering the first i candidates with numbers <= t.
    best = [[neg] * (top + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int, int | None]]] = [[(0, 0, None)] * (top + 1) for _ in range(n + 1)]
    for t in range(top + 1):
        best[0][t] = 0.0
    for i in range(1, n + 1):
        for t in range(top + 1):
            choices = [(best[i - 1][t] + DROP_COST, (i - 1, t, None))]
            if t >= 1:
                choices.append((best[i][t - 1], (i, t - 1, -1)))
                take = best[i - 1][t - 1] + _position_log_evidence(ordered[i - 1], t, primary)
                choices.append((take, (i - 1, t - 1, t)))
            best[i][t], back[i][t] = max(choices, key=lambda ch: ch[0])
    result: list[int | None] = [None] * n
    i, t = n, top
    while i > 0:
        pi, pt, tooth = back[i][t]
        if tooth is not None and tooth > 0:
            result[i - 1] = tooth
        i, t = pi, pt
    return result


def renumber(cands: Sequence[Candidate], width: float) -> list[int | None]:
    """FDI number for each candidate (None = discarded), consistent per the module rules."""
    if not cands:
        return []
    quads = [quadrant(c.label) for c in cands]
    midline = find_midline(cands, width)
    _fix_sides(cands, midline, quads)
    _fix_jaws(cands, width, quads)
    primary = [is_primary_candidate(c) for c in cands]
    fdi: list[int | None] = [None] * len(cands)
    for q in (1, 2, 3, 4):
        for dentition in (False, True):
            members = [k for k in range(len(cands)) if quads[k] == q and primary[k] == dentition]
            members.sort(key=lambda k: abs(cands[k].cx - midline))
            teeth = _assign_quadrant([cands[k] for k in members], dentition)
            fq = PRIMARY_QUADRANT[q] if dentition else q
            for k, tooth in zip(members, teeth, strict=True):
                fdi[k] = None if tooth is None else 10 * fq + tooth
    return fdi
