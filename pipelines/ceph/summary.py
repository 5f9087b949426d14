"""The ceph summary: skeletal class and vertical pattern, each by a stated vote of three indicators.

One indicator alone contradicts another often enough (ANB 0.96 deg is Class I by Steiner's norm and
Class III by the ISBI band), so the summary never rests on one. Rule (docs/ceph_summary.md):
- each indicator is read against its own norm, named in `convention`;
- the summary is the class that at least two of the three give;
- when all three differ (one each), the summary is the middle class (Class I, normodivergent),
  because the indicators straddle it, and `agreement` is 1 so the report says "borderline".
The norms come from norms.yaml and the ISBI table in measurements.py: no number is repeated here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipelines.ceph import measurements as meas


@dataclass(frozen=True)
class Indicator:
    id: str
    value: float
    unit: str
    label: str  # "Class II", "hyperdivergent", ...
    convention: str


@dataclass(frozen=True)
class Verdict:
    label: str
    agreement: int  # how many of the indicators give `label` (1 when all differ)
    indicators: list[Indicator]
    rule: str


# (indicator id, source: "norm" (norms.yaml mean +- sd) or "isbi" (ISBI band), label below, inside, above)
SKELETAL = (
    ("ANB", "norm", "Class III", "Class I", "Class II"),
    ("Wits", "norm", "Class III", "Class I", "Class II"),
    ("APDI", "isbi", "Class II", "Class I", "Class III"),  # APDI falls as the mandible drops back
)
VERTICAL = (
    ("GoGn-SN", "norm", "hypodivergent", "normodivergent", "hyperdivergent"),
    ("FMA", "norm", "hypodivergent", "normodivergent", "hyperdivergent"),
    ("Jarabak", "norm", "hyperdivergent", "normodivergent", "hypodivergent"),  # high ratio: short face
)
SKELETAL_MIDDLE, VERTICAL_MIDDLE = "Class I", "normodivergent"


def _band(source: str, ind_id: str) -> tuple[float, float, str, str]:
    """(low edge, high edge, unit, convention) of one indicator."""
    if source == "norm":
        n = meas.load_norms()[ind_id]
        return *meas.norm_band(n), n["unit"], meas.norm_convention(n)
    return *meas.isbi_band(ind_id), meas.isbi_convention(ind_id)


def _read(table: tuple, values: dict[str, float]) -> list[Indicator]:
    out = []
    for ind_id, source, below, inside, above in table:
        lo, hi, unit, convention = _band(source, ind_id)
        v = float(values[ind_id])
        label = meas.by_band(v, lo, hi, below, inside, above)
        out.append(Indicator(ind_id, round(v, 2), unit, label, convention))
    return out


def vote(indicators: list[Indicator], middle: str) -> Verdict:
    label, count = Counter(i.label for i in indicators).most_common(1)[0]
    if count == 1:
        label = middle
    names = ", ".join(i.id for i in indicators)
    detail = "; ".join(f"{i.id} {i.value:g} {i.unit}: {i.label} ({i.convention})" for i in indicators)
    how = (
        f"{count} of {len(indicators)} agree"
        if count > 1
        else f"no two agree, reported as the middle class {middle} (borderline)"
    )
    return Verdict(label, count, indicators, f"majority of {names}: {how}. {detail}")


def skeletal_class(values: dict[str, float]) -> Verdict:
    return vote(_read(SKELETAL, values), SKELETAL_MIDDLE)


def vertical_pattern(values: dict[str, float]) -> Verdict:
    return vote(_read(VERTICAL, values), VERTICAL_MIDDLE)
