"""Cephalometric measurements and the eight ISBI-2015 classes from the 19 landmarks (pure, numpy only).

Coordinates are image pixels (x right, y down) with an isotropic pixel spacing in mm. `facing` is +1
for a face looking right (+x) and -1 for one looking left; points are mirrored to the right-facing
frame first, so every signed angle means the same thing for both orientations.

Approximations forced by the ISBI landmark set (no incisor apices, no molars):
- incisor axes: upper UIT->A, lower LIT->B (alveolar proxies; the roots' apices lie a few mm
  behind A and B, so these angles read a few degrees off the textbook ones);
- occlusal plane (Wits): through the midpoint of the incisal tips, with a direction 30 % of the
  way from the palatal plane (PNS->ANS) to the mandibular plane (Go->Me), where the occlusal
  plane lies on average (SN-PP about 8, SN-OP about 14, SN-MP about 32 degrees). A patient whose
  occlusal plane is steeper or flatter than average gets a Wits value off by about
  tan(error) x the A-B height (34 mm on ISBI val: about 0.6 mm per degree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np
import yaml

from pipelines.ceph.preprocess import LANDMARK_IDS

NORMS_PATH = Path(__file__).with_name("norms.yaml")
Point = np.ndarray
T = TypeVar("T")


@dataclass(frozen=True)
class MeasurementValue:
    id: str
    name: str
    value: float
    unit: str
    mean: float
    sd: float
    interpretation: str
    convention: str


@dataclass(frozen=True)
class ClassValue:
    id: str
    name: str
    value: float
    unit: str
    category: int
    label: str
    convention: str


@lru_cache(maxsize=1)
def load_norms() -> dict[str, dict]:
    return yaml.safe_load(NORMS_PATH.read_text())


# --- geometry (right-facing frame, y down) ------------------------------------------------------


def direction(v: Point) -> float:
    """Direction of a vector in degrees, counter-clockwise as seen on screen (y is down)."""
    return math.degrees(math.atan2(-float(v[1]), float(v[0])))


def wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def angle_between(u: Point, v: Point) -> float:
    """Unsigned angle between two vectors, 0..180 degrees."""
    return abs(wrap(direction(v) - direction(u)))


def angle_at(vertex: Point, a: Point, b: Point) -> float:
    """Angle a-vertex-b in degrees."""
    return angle_between(a - vertex, b - vertex)


def line_angle(u: Point, v: Point) -> float:
    """Angle between two lines (not vectors), 0..90 degrees."""
    d = abs(wrap(direction(v) - direction(u))) % 180.0
    return min(d, 180.0 - d)


def signed_distance(p: Point, a: Point, b: Point) -> float:
    """Distance of p from line a->b; positive on the forward (+x) side of a downward line."""
    d = b - a
    cross = d[0] * (p[1] - a[1]) - d[1] * (p[0] - a[0])
    return float(-cross / max(np.hypot(*d), 1e-9))


def project(p: Point, a: Point, d: Point) -> float:
    """Scalar position of p's foot on the line through a with direction d (unit of d's length)."""
    return float(np.dot(p - a, d) / max(np.dot(d, d), 1e-12))


# --- measurements ------------------------------------------------------------------------------


def canonical(points: np.ndarray, facing: int) -> dict[str, Point]:
    """id -> point in the right-facing frame (x mirrored for a left-facing face)."""
    pts = np.asarray(points, np.float64).copy()
    if facing < 0:
        pts[:, 0] = -pts[:, 0]
    return dict(zip(LANDMARK_IDS, pts, strict=True))


def raw_values(p: dict[str, Point], spacing_mm: float) -> dict[str, float]:
    """All measurement and class values (deg, mm, percent, ratio) from right-facing landmarks."""
    S, N, Or, Po, A, B, Pog, Me, Gn, Go = (
        p[k] for k in ("S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go")
    )
    LIT, UIT, PNS, ANS = p["LIT"], p["UIT"], p["PNS"], p["ANS"]
    fh = Or - Po  # Frankfort horizontal, pointing forward
    mp = Me - Go  # mandibular plane (Go-Me), pointing forward
    sna, snb = angle_at(N, S, A), angle_at(N, S, B)
    u1_axis, l1_axis = UIT - A, LIT - B  # pointing to the incisal tips
    fma = line_angle(fh, mp)
    impa = angle_between(-mp, -l1_axis)  # inside angle between mandibular plane and L1 (about 90)
    # Downs' AB-plane angle to the facial plane, negative when B lies behind A.
    ab_facial = wrap(direction(B - A) - direction(Pog - N))
    # Palatal plane against FH, positive when the palatal plane rises anteriorly.
    pp_fh = wrap(direction(ANS - PNS) - direction(fh))
    facial_angle = angle_between(-fh, Pog - N)
    ab_mp = angle_between(A - B, -mp)
    # Occlusal plane proxy (module docstring): 30 % from palatal to mandibular plane, through the tips.
    pp_u = (ANS - PNS) / max(np.hypot(*(ANS - PNS)), 1e-9)
    mp_u = mp / max(np.hypot(*mp), 1e-9)
    op_dir = 0.7 * pp_u + 0.3 * mp_u
    op_origin = (UIT + LIT) / 2
    wits_px = (project(A, op_origin, op_dir) - project(B, op_origin, op_dir)) * np.hypot(*op_dir)
    mw_px = float(np.hypot(*(UIT - LIT))) * (1.0 if UIT[0] >= LIT[0] else -1.0)
    s_go, n_me = float(np.hypot(*(Go - S))), float(np.hypot(*(Me - N)))
    UL, LL, Sn, SoftPog = p["UL"], p["LL"], p["Sn"], p["SoftPog"]
    return {
        "SNA": sna,
        "SNB": snb,
        "ANB": sna - snb,
        "U1-NA-deg": line_angle(u1_axis, A - N) * _side(UIT, N, A),
        "U1-NA-mm": signed_distance(UIT, N, A) * spacing_mm,
        "L1-NB-deg": line_angle(l1_axis, B - N) * _side(LIT, N, B),
        "L1-NB-mm": signed_distance(LIT, N, B) * spacing_mm,
        "interincisal": angle_between(-u1_axis, -l1_axis),
        "GoGn-SN": wrap(direction(N - S) - direction(Gn - Go)),
        "facial-angle": facial_angle,
        "convexity": (180.0 - angle_at(A, N, Pog)) * (1.0 if signed_distance(A, N, Pog) >= 0 else -1.0),
        "Y-axis": angle_between(fh, Gn - S),
        "FMA": fma,
        "IMPA": impa,
        "FMIA": 180.0 - fma - impa,
        "Wits": float(wits_px) * spacing_mm,
        "Jarabak": 100.0 * s_go / max(n_me, 1e-9),
        # Soft tissue. Holdaway's H-angle: H-line (SoftPog -> UL) to N-B, positive when the H-line
        # leans further forward than N-B (the usual case). Burstone's lip protrusion: lip ahead of
        # Sn-Pog' (positive forward, in the face's direction).
        "H-angle": wrap(direction(N - B) - direction(UL - SoftPog)),
        "UL-SnPog": signed_distance(UL, Sn, SoftPog) * spacing_mm,
        "LL-SnPog": signed_distance(LL, Sn, SoftPog) * spacing_mm,
        # ISBI class values
        "ODI": ab_mp + pp_fh,
        "APDI": facial_angle + ab_facial + pp_fh,
        "FHI": s_go / max(n_me, 1e-9),
        "FMA_ISBI": wrap(direction(N - S) - direction(Gn - Go)),
        "MW": mw_px * spacing_mm,
    }


def _side(tip: Point, a: Point, b: Point) -> float:
    """+1 when the incisor is tipped forward of line a-b's direction (proclined), -1 otherwise."""
    return 1.0 if signed_distance(tip, a, b) >= 0 else -1.0


def by_band(value: float, lo: float, hi: float, below: T, inside: T, above: T) -> T:
    """What a value reads as against a normal band; the edges belong to the band (normal class)."""
    return below if value < lo else above if value > hi else inside


def norm_band(norm: dict) -> tuple[float, float]:
    """The normal band of a norms.yaml entry: mean - sd to mean + sd."""
    return norm["mean"] - norm["sd"], norm["mean"] + norm["sd"]


def interpret(value: float, norm: dict) -> str:
    return str(by_band(value, *norm_band(norm), norm["low"], norm["normal"], norm["high"]))


def norm_convention(norm: dict) -> str:
    """The label's convention, as shown beside it: "Steiner norm 2 ± 2 deg"."""
    return f"{norm['group']} norm {norm['mean']:g} ± {norm['sd']:g} {norm['unit']}"


def measurements(points: np.ndarray, spacing_mm: float, facing: int = 1) -> list[MeasurementValue]:
    return measurements_from_values(raw_values(canonical(points, facing), spacing_mm))


def measurements_from_values(values: dict[str, float]) -> list[MeasurementValue]:
    out = []
    for mid, norm in load_norms().items():
        v = float(values[mid])
        out.append(
            MeasurementValue(
                mid,
                norm["name"],
                round(v, 2),
                norm["unit"],
                norm["mean"],
                norm["sd"],
                interpret(v, norm),
                norm_convention(norm),
            )
        )
    return out


# --- ISBI 2015 classes (Wang et al., Medical Image Analysis 31, 2016, table of criteria) ---------
# (id, name, unit, low edge, high edge, category below, category inside, category above, labels)
ISBI_CLASSES: list[tuple[str, str, str, float, float, tuple[int, int, int], dict[int, str]]] = [
    (
        "ANB",
        "ANB angle",
        "deg",
        3.2,
        5.7,
        (3, 1, 2),
        # "ISBI" in the words too: the Steiner reading of the same ANB can differ (docs/ceph_summary.md).
        {1: "ISBI Class I", 2: "ISBI Class II", 3: "ISBI Class III"},
    ),
    (
        "SNB",
        "SNB angle",
        "deg",
        74.6,
        78.7,
        (2, 1, 3),
        {1: "normal mandible", 2: "retrognathic mandible", 3: "prognathic mandible"},
    ),
    (
        "SNA",
        "SNA angle",
        "deg",
        79.4,
        83.2,
        (3, 1, 2),
        {1: "normal maxilla", 2: "prognathic maxilla", 3: "retrognathic maxilla"},
    ),
    (
        "ODI",
        "Overbite depth indicator",
        "deg",
        68.4,
        80.5,
        (3, 1, 2),
        {1: "normal", 2: "deep bite tendency", 3: "open bite tendency"},
    ),
    (
        "APDI",
        "Anteroposterior dysplasia indicator",
        "deg",
        77.6,
        85.2,
        (2, 1, 3),
        {1: "normal", 2: "Class II tendency", 3: "Class III tendency"},
    ),
    (
        "FHI",
        "Facial height index (S-Go / N-Me)",
        "ratio",
        0.65,
        0.75,
        (3, 1, 2),
        {1: "normal", 2: "short face tendency", 3: "long face tendency"},
    ),
    (
        "FMA",
        "SN to mandibular plane Go-Gn",
        "deg",
        26.8,
        31.4,
        (3, 1, 2),
        {1: "normal", 2: "high angle tendency", 3: "low angle tendency"},
    ),
]


ISBI_SOURCE = "ISBI 2015 class (Wang et al. 2016)"
MW_EDGES = (0.0, 2.0, 4.5)


_ISBI_BY_ID = {row[0]: row for row in ISBI_CLASSES}


def isbi_band(cid: str) -> tuple[float, float, str]:
    """(low edge, high edge, unit) of the ISBI normal class (C1) of one three-class value."""
    _, _, unit, lo, hi, *_ = _ISBI_BY_ID[cid]
    return lo, hi, unit


def isbi_convention(cid: str) -> str:
    if cid == "MW":
        return f"{ISBI_SOURCE}: C1 {MW_EDGES[1]:g} to {MW_EDGES[2]:g} mm"
    lo, hi, unit = isbi_band(cid)
    return f"{ISBI_SOURCE}: C1 {lo:g} to {hi:g} {unit}"


def isbi_category(cid: str, value: float) -> int:
    """ISBI class index of one value; edges belong to the normal class (C1)."""
    if cid == "MW":
        # C1 normal 2..4.5 mm, C2 edge to edge (0..2 mm; the table says "0 mm"), C3 anterior
        # crossbite (< 0), C4 large overjet (> 4.5 mm).
        if value < MW_EDGES[0]:
            return 3
        if value < MW_EDGES[1]:
            return 2
        return 1 if value <= MW_EDGES[2] else 4
    lo, hi, _ = isbi_band(cid)
    return by_band(value, lo, hi, *_ISBI_BY_ID[cid][5])


MW_LABELS = {1: "normal", 2: "edge to edge", 3: "anterior crossbite", 4: "large overjet"}


def classifications(points: np.ndarray, spacing_mm: float, facing: int = 1) -> list[ClassValue]:
    return classifications_from_values(raw_values(canonical(points, facing), spacing_mm))


def classifications_from_values(values: dict[str, float]) -> list[ClassValue]:
    out = []
    for cid, name, unit, *_rest, labels in ISBI_CLASSES:
        v = float(values["FMA_ISBI" if cid == "FMA" else cid])
        cat = isbi_category(cid, v)
        out.append(ClassValue(cid, name, round(v, 3), unit, cat, labels[cat], isbi_convention(cid)))
    mw = float(values["MW"])
    cat = isbi_category("MW", mw)
    out.append(
        ClassValue(
            "MW",
            "Modified Wits (UIT to LIT, signed)",
            round(mw, 2),
            "mm",
            cat,
            MW_LABELS[cat],
            isbi_convention("MW"),
        )
    )
    return out
