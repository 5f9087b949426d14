"""Numbering rules: one tooth per FDI number, quadrants and order consistent with the anatomy.

Image geometry of a panoramic: the patient's right is on the image's left, so quadrants 1 (upper)
and 4 (lower) lie left of the midline, 2 and 3 right of it; upper teeth lie above lower ones.
Within a quadrant tooth numbers grow with the distance from the midline.

Steps: (1) find the midline that best agrees with the model's left/right evidence and move teeth
that sit on the wrong side; (2) move teeth whose height contradicts their upper/lower label
among neighbours; (3) per quadrant and per dentition (permanent 1-8, primary 1-5), choose strictly
increasing numbers (from the midline out) that maximise the summed log evidence of tooth
position and, for permanent teeth, of the gaps between neighbours (a space where a tooth is
missing), which also resolves duplicates. Permanent and primary teeth are numbered separately, so a
primary tooth and its permanent successor (mixed dentition) can both be reported. A candidate's
dentition is the one with more probability mass; its side and jaw are shared by both dentitions
(quadrant 5 lies where 1 does, 6 where 2, 7 where 3, 8 where 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    bounds: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


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


@dataclass(frozen=True)
class GapPrior:
    """What the gap between two numbered neighbours of a quadrant (`gap_ratio` r) says about how many
    teeth are missing between them (k): a Student-t of r for k = 0, 1, 2 and 3 or more."""

    ratio: tuple[tuple[float, float], ...]  # (location, scale) of r for each k
    dof: float
    weight: float  # of the gap evidence beside the model's position evidence

    def log_evidence(self, r: np.ndarray, most: int) -> np.ndarray:
        """Weighted log likelihood ratio of k = 0 .. most - 1 missing teeth against none, for each gap
        ratio in r: shape r.shape + (most,)."""
        params = np.asarray([self.ratio[min(k, len(self.ratio) - 1)] for k in range(most)])
        loc, scale = params[:, 0], params[:, 1]
        z = (np.asarray(r, np.float64)[..., None] - loc) / scale
        log_t = -0.5 * (self.dof + 1) * np.log1p(z * z / self.dof) - np.log(scale)
        return self.weight * (log_t - log_t[..., :1])


# Fitted on the shipped model's tooth candidates on the training films of both sets, matched to the
# annotated teeth, and the weight chosen there (`python -m training.pano.gap_prior`): neighbours overlap
# (r -0.18); one missing tooth leaves about a fifth of a tooth's width, with a wide spread, since the
# neighbours drift into the space.
GAP_PRIOR = GapPrior(
    ratio=((-0.176, 0.141), (0.188, 0.394), (0.951, 0.421), (1.714, 0.595)), dof=3, weight=0.25
)


def gap_ratio(inner: Candidate, outer: Candidate, q: int) -> float:
    """Space between the facing edges of two teeth of quadrant q (inner nearer the midline) over their
    mean width; negative where they overlap."""
    ix0, _, ix1, _ = inner.bounds
    ox0, _, ox1, _ = outer.bounds
    gap = ix0 - ox1 if q in (1, 4) else ox0 - ix1  # quadrants 1 and 4 grow towards the image's left
    return gap / max(((ix1 - ix0) + (ox1 - ox0)) / 2, EPS)


def _assign_quadrant(
    ordered: Sequence[Candidate], q: int, primary: bool, gap: GapPrior
) -> list[int | None]:
    """Strictly increasing tooth numbers 1..8 (primary 1..5) for the candidates of quadrant q ordered
    from the midline out (None = dropped): the most likely numbering given each candidate's position
    evidence and, for permanent teeth, the gap between each numbered tooth and the next."""
    n, top = len(ordered), TEETH_PER_QUADRANT[primary]
    evidence = [[_position_log_evidence(c, t, primary) for t in range(1, top + 1)] for c in ordered]
    # gaps[j, i, k]: gap evidence for k teeth missing between numbered candidates j < i.
    gaps = np.zeros((n, n, top))
    if not primary and n:
        gaps = gap.log_evidence(np.array([[gap_ratio(a, b, q) for b in ordered] for a in ordered]), top)
    steps = gaps.tolist()  # Python floats: the loop below reads them one at a time
    neg = -math.inf
    # best[i][t]: best score of the first i + 1 candidates with candidate i numbered t + 1;
    # back[i][t]: the previous numbered candidate and its number index (None: all before dropped).
    best = [[neg] * top for _ in range(n)]
    back: list[list[tuple[int, int] | None]] = [[None] * top for _ in range(n)]
    for i in range(n):
        for t in range(top):
            score, prev = i * DROP_COST, None
            for j in range(i):
                for s in range(t):
                    option = best[j][s] + (i - j - 1) * DROP_COST + steps[j][i][t - s - 1]
                    if option > score:
                        score, prev = option, (j, s)
            best[i][t] = score + evidence[i][t]
            back[i][t] = prev
    score, last = n * DROP_COST, None
    for i in range(n):
        for t in range(top):
            if best[i][t] + (n - i - 1) * DROP_COST > score:
                score, last = best[i][t] + (n - i - 1) * DROP_COST, (i, t)
    result: list[int | None] = [None] * n
    while last is not None:
        i, t = last
        result[i] = t + 1
        last = back[i][t]
    return result


def renumber(cands: Sequence[Candidate], width: float, gap: GapPrior = GAP_PRIOR) -> list[int | None]:
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
            teeth = _assign_quadrant([cands[k] for k in members], q, dentition, gap)
            fq = PRIMARY_QUADRANT[q] if dentition else q
            for k, tooth in zip(members, teeth, strict=True):
                fdi[k] = None if tooth is None else 10 * fq + tooth
    return fdi
