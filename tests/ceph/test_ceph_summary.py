"""The summary's skeletal class and vertical pattern follow the stated majority rule and never
contradict the indicators they list (issue: ANB 0.96 was "Class I" under measurements and
"Class III" in the summary)."""

import pytest
from ceph_helpers import skull_array

from pipelines.ceph import measurements as meas
from pipelines.ceph import summary

BASE = {"ANB": 2.0, "Wits": 0.0, "APDI": 81.0, "GoGn-SN": 32.0, "FMA": 25.0, "Jarabak": 62.0}


@pytest.mark.parametrize(
    ("anb", "wits", "apdi", "expected", "agreement"),
    [
        (2.0, 0.0, 81.0, "Class I", 3),
        (0.96, -3.0, 88.0, "Class III", 2),  # Steiner ANB says I; Wits and APDI say III
        (0.96, 0.5, 81.0, "Class I", 3),  # the ANB: Class I by every stated norm
        (6.0, 3.0, 75.0, "Class II", 3),
        (6.0, -3.0, 81.0, "Class I", 1),  # II, III, I: no majority, the middle class
        (-1.0, 3.0, 75.0, "Class II", 2),
    ],
)
def test_skeletal_vote(anb: float, wits: float, apdi: float, expected: str, agreement: int) -> None:
    v = summary.skeletal_class({**BASE, "ANB": anb, "Wits": wits, "APDI": apdi})
    assert (v.label, v.agreement) == (expected, agreement)
    labels = [i.label for i in v.indicators]
    assert [i.id for i in v.indicators] == ["ANB", "Wits", "APDI"]
    if agreement > 1:
        assert labels.count(expected) == agreement
    assert v.rule.startswith("majority of ANB, Wits, APDI")
    assert "Steiner norm 2 ± 2 deg" in v.rule and "ISBI 2015 class" in v.rule


def test_skeletal_indicator_matches_measurement_interpretation() -> None:
    """The ANB and Wits readings in the summary are those of the measurements table."""
    values = meas.raw_values(meas.canonical(skull_array(), 1), 1.0)
    by_id = {m.id: m for m in meas.measurements_from_values(values)}
    v = summary.skeletal_class(values)
    words = {"Class I": "Class I", "Class II": "Class II", "Class III": "Class III"}
    for ind in v.indicators[:2]:
        assert words[ind.label] in by_id[ind.id].interpretation
        assert ind.convention == by_id[ind.id].convention


@pytest.mark.parametrize(
    ("gogn", "fma", "jarabak", "expected", "agreement"),
    [
        (32.0, 25.0, 62.0, "normodivergent", 3),
        (40.0, 31.0, 62.0, "hyperdivergent", 2),
        (40.0, 31.0, 55.0, "hyperdivergent", 3),
        (25.0, 18.0, 68.0, "hypodivergent", 3),
        (40.0, 18.0, 62.0, "normodivergent", 1),
    ],
)
def test_vertical_vote(gogn: float, fma: float, jarabak: float, expected: str, agreement: int) -> None:
    v = summary.vertical_pattern({**BASE, "GoGn-SN": gogn, "FMA": fma, "Jarabak": jarabak})
    assert (v.label, v.agreement) == (expected, agreement)


def test_edges_belong_to_the_normal_band() -> None:
    # Steiner ANB 2 +- 2: 0 and 4 are Class I.
    for anb in (0.0, 4.0):
        v = summary.skeletal_class({**BASE, "ANB": anb})
        assert v.indicators[0].label == "Class I"
