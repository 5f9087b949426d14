import pytest

from pipelines.pano.numbering import CLASS_FDI, PERMANENT_FDI, fdi_to_universal, mirror_fdi, universal_to_fdi


@pytest.mark.parametrize(
    ("fdi", "universal"),
    [(18, 1), (11, 8), (21, 9), (28, 16), (38, 17), (31, 24), (41, 25), (48, 32), (16, 3), (36, 19),
     (46, 30)],
)
def test_fdi_to_universal_known_pairs(fdi: int, universal: int) -> None:
    assert fdi_to_universal(fdi) == universal
    assert universal_to_fdi(universal) == fdi


def test_mapping_is_a_bijection_over_the_permanent_dentition() -> None:
    assert sorted(fdi_to_universal(f) for f in PERMANENT_FDI) == list(range(1, 33))
    assert all(universal_to_fdi(fdi_to_universal(f)) == f for f in PERMANENT_FDI)


@pytest.mark.parametrize("bad", [0, 10, 19, 51, 55, 85, 9])
def test_non_permanent_numbers_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        fdi_to_universal(bad)


def test_channel_order_and_mirror() -> None:
    assert CLASS_FDI[0] == 0 and CLASS_FDI[1] == 11 and CLASS_FDI[-1] == 48 and len(CLASS_FDI) == 33
    assert mirror_fdi(11) == 21 and mirror_fdi(36) == 46 and mirror_fdi(48) == 38
