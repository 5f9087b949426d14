"""Measurement geometry on a hand-made skull with known angles and distances; mirroring; classes."""

import math

import numpy as np
import pytest
from ceph_helpers import skull, skull_array

from pipelines.ceph import measurements as meas


def values(points: np.ndarray, facing: int = 1) -> dict[str, float]:
    return meas.raw_values(meas.canonical(points, facing), 1.0)


def test_known_angles_and_distances() -> None:
    v = values(skull_array())
    assert v["SNA"] == pytest.approx(82.0, abs=1e-6)
    assert v["SNB"] == pytest.approx(78.0, abs=1e-6)
    assert v["ANB"] == pytest.approx(4.0, abs=1e-6)
    assert v["FMA"] == pytest.approx(25.0, abs=1e-6)
    assert v["GoGn-SN"] == pytest.approx(30.0, abs=1e-6)
    assert v["FMA_ISBI"] == pytest.approx(30.0, abs=1e-6)
    p = skull()
    n_me = float(np.hypot(*(p["Me"] - p["N"])))
    assert v["Jarabak"] == pytest.approx(100 * 80.0 / n_me, rel=1e-9)
    assert v["FHI"] == pytest.approx(80.0 / n_me, rel=1e-9)
    assert v["MW"] == pytest.approx(3.0, abs=1e-9)  # UIT 3 mm ahead of LIT, same height
    # Y-axis: FH to S-Gn.
    gn = p["Gn"]
    assert v["Y-axis"] == pytest.approx(math.degrees(math.atan2(gn[1], gn[0])), abs=1e-6)
    # FMIA closes the Tweed triangle.
    assert v["FMA"] + v["IMPA"] + v["FMIA"] == pytest.approx(180.0)


def test_incisor_distances_signed_forward() -> None:
    p = skull()
    v = values(skull_array(p))
    assert v["U1-NA-mm"] > 0  # UIT lies ahead of the N-A line
    p["UIT"] = p["UIT"] - [40.0, 0.0]
    assert values(skull_array(p))["U1-NA-mm"] < 0


def test_wits_on_a_level_occlusal_plane() -> None:
    # Palatal and mandibular planes both level: the occlusal plane is level, Wits = A.x - B.x.
    p = skull()
    p["Go"], p["Me"] = np.array([0.0, 100.0]), np.array([70.0, 100.0])
    p["A"], p["B"] = np.array([75.0, 45.0]), np.array([72.0, 95.0])
    assert values(skull_array(p))["Wits"] == pytest.approx(3.0, abs=1e-9)
    p["B"] = np.array([79.0, 95.0])
    assert values(skull_array(p))["Wits"] == pytest.approx(-4.0, abs=1e-9)


def test_mm_scale_with_spacing() -> None:
    pts = skull_array()
    a = meas.raw_values(meas.canonical(pts, 1), 1.0)
    b = meas.raw_values(meas.canonical(pts * 10, 1), 0.1)  # same skull at 0.1 mm/px
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-6), k


def test_mirrored_face_gives_the_same_values() -> None:
    pts = skull_array()
    mirrored = pts.copy()
    mirrored[:, 0] = 1000.0 - mirrored[:, 0]
    a, b = values(pts, 1), values(mirrored, -1)
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-6), k
    # Read as the wrong way round, the face gives different (wrong) signs: facing matters.
    assert values(mirrored, 1)["U1-NA-mm"] == pytest.approx(-a["U1-NA-mm"])


def test_measurement_list_complete_with_norms() -> None:
    ms = meas.measurements(skull_array(), 1.0)
    ids = {m.id for m in ms}
    for required in (
        "SNA",
        "SNB",
        "ANB",
        "U1-NA-deg",
        "U1-NA-mm",
        "L1-NB-deg",
        "L1-NB-mm",
        "interincisal",
        "GoGn-SN",
        "facial-angle",
        "convexity",
        "Y-axis",
        "FMA",
        "IMPA",
        "FMIA",
        "Wits",
        "Jarabak",
    ):
        assert required in ids
    for m in ms:
        assert m.unit in ("deg", "mm", "ratio", "percent")
        assert m.sd > 0 and m.interpretation
    anb = next(m for m in ms if m.id == "ANB")
    assert anb.interpretation == "Class I jaw relation"  # 4 = 2 + 1 sd


@pytest.mark.parametrize(
    ("cid", "value", "category"),
    [
        ("ANB", 3.2, 1),
        ("ANB", 3.19, 3),
        ("ANB", 5.7, 1),
        ("ANB", 5.71, 2),
        ("SNB", 74.6, 1),
        ("SNB", 74.59, 2),
        ("SNB", 78.7, 1),
        ("SNB", 78.71, 3),
        ("SNA", 79.4, 1),
        ("SNA", 79.39, 3),
        ("SNA", 83.2, 1),
        ("SNA", 83.21, 2),
        ("ODI", 68.4, 1),
        ("ODI", 68.39, 3),
        ("ODI", 80.5, 1),
        ("ODI", 80.51, 2),
        ("APDI", 77.6, 1),
        ("APDI", 77.59, 2),
        ("APDI", 85.2, 1),
        ("APDI", 85.21, 3),
        ("FHI", 0.65, 1),
        ("FHI", 0.649, 3),
        ("FHI", 0.75, 1),
        ("FHI", 0.751, 2),
        ("FMA", 26.8, 1),
        ("FMA", 26.79, 3),
        ("FMA", 31.4, 1),
        ("FMA", 31.41, 2),
        ("MW", 2.0, 1),
        ("MW", 1.99, 2),
        ("MW", 0.0, 2),
        ("MW", -0.01, 3),
        ("MW", 4.5, 1),
        ("MW", 4.51, 4),
    ],
)
def test_isbi_class_edges(cid: str, value: float, category: int) -> None:
    assert meas.isbi_category(cid, value) == category


def test_classifications_and_summary() -> None:
    classes = meas.classifications(skull_array(), 1.0)
    assert [c.id for c in classes] == ["ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FMA", "MW"]
    by_id = {c.id: c for c in classes}
    assert by_id["ANB"].category == 1 and by_id["ANB"].label == "ISBI Class I"
    assert by_id["ANB"].convention == "ISBI 2015 class (Wang et al. 2016): C1 3.2 to 5.7 deg"
    assert by_id["MW"].convention.endswith("C1 2 to 4.5 mm")
    assert by_id["FMA"].value == pytest.approx(30.0, abs=1e-3) and by_id["FMA"].category == 1


def test_measurements_name_their_norm() -> None:
    by_id = {m.id: m for m in meas.measurements(skull_array(), 1.0)}
    assert by_id["ANB"].convention == "Steiner norm 2 ± 2 deg"
    assert by_id["Wits"].convention == "Wits norm 0 ± 2 mm"
    assert by_id["H-angle"].convention == "Holdaway norm 11 ± 4 deg"


def soft_tissue_skull(h_angle: float, ul_mm: float, ll_mm: float) -> dict[str, np.ndarray]:
    """The skull with Sn-Pog' vertical at x = 80 and the lips placed at known distances from it,
    and the H-line (SoftPog -> UL) at a known angle to N-B."""
    p = skull()
    nb_dir = math.degrees(math.atan2(-(p["N"] - p["B"])[1], (p["N"] - p["B"])[0]))  # 78 deg
    p["Sn"], p["SoftPog"] = np.array([80.0, 45.0]), np.array([80.0, 120.0])
    p["LL"] = np.array([80.0 + ll_mm, 85.0])
    # UL on the H-line at ul_mm ahead of Sn-Pog'.
    r = math.radians(nb_dir - h_angle)
    t = ul_mm / math.cos(r)
    p["UL"] = p["SoftPog"] + t * np.array([math.cos(r), -math.sin(r)])
    return p


@pytest.mark.parametrize(("h", "ul", "ll"), [(10.0, 4.0, -1.0), (20.0, 6.0, 3.0), (3.0, 1.0, 2.0)])
def test_soft_tissue_profile_known_answers(h: float, ul: float, ll: float) -> None:
    p = soft_tissue_skull(h, ul, ll)
    for facing in (1, -1):
        pts = skull_array(p)
        if facing < 0:
            pts[:, 0] = 1000.0 - pts[:, 0]  # the same face looking left
        v = values(pts, facing)
        assert v["H-angle"] == pytest.approx(h, abs=1e-6)
        assert v["UL-SnPog"] == pytest.approx(ul, abs=1e-6)
        assert v["LL-SnPog"] == pytest.approx(ll, abs=1e-6)
    # Distances scale with the pixel spacing, angles do not.
    v = meas.raw_values(meas.canonical(skull_array(p), 1), 0.1)
    assert v["UL-SnPog"] == pytest.approx(ul * 0.1) and v["H-angle"] == pytest.approx(h)


def test_soft_tissue_interpretation() -> None:
    by_id = {m.id: m for m in meas.measurements(skull_array(soft_tissue_skull(20.0, 6.0, 3.0)), 1.0)}
    assert by_id["H-angle"].interpretation == "convex soft-tissue profile"
    assert by_id["UL-SnPog"].interpretation == "protrusive upper lip"
    assert by_id["LL-SnPog"].interpretation == "normal lower lip position"
    by_id = {m.id: m for m in meas.measurements(skull_array(soft_tissue_skull(3.0, 1.0, -1.0)), 1.0)}
    assert by_id["H-angle"].interpretation == "straight or concave soft-tissue profile"
    assert by_id["UL-SnPog"].interpretation == "retrusive upper lip"
    assert by_id["LL-SnPog"].interpretation == "retrusive lower lip"
