import pytest

from pipelines.pano.numbering import (
    CLASS_FDI,
    PERMANENT_FDI,
    PRIMARY_FDI,
    fdi_to_universal,
    is_primary,
    mirror_fdi,
    missing_teeth,
    successor,
    unerupted,
    universal_label,
    universal_label_to_fdi,
    universal_to_fdi,
)


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
    # Permanent channels keep pano-teeth 1.x's order (1-32); the 20 primary channels follow.
    assert len(CLASS_FDI) == 53 and CLASS_FDI[0] == 0
    assert CLASS_FDI[1:33] == PERMANENT_FDI and CLASS_FDI[32] == 48
    assert CLASS_FDI[33] == 51 and CLASS_FDI[-1] == 85 and CLASS_FDI[33:] == PRIMARY_FDI
    assert mirror_fdi(11) == 21 and mirror_fdi(36) == 46 and mirror_fdi(48) == 38


@pytest.mark.parametrize(("fdi", "other"), [(51, 61), (55, 65), (71, 81), (64, 54), (85, 75), (73, 83)])
def test_mirror_swaps_primary_sides(fdi: int, other: int) -> None:
    assert mirror_fdi(fdi) == other and mirror_fdi(other) == fdi


def test_mirror_keeps_the_dentition_for_every_class() -> None:
    for f in CLASS_FDI[1:]:
        assert is_primary(mirror_fdi(f)) == is_primary(f) and mirror_fdi(mirror_fdi(f)) == f


@pytest.mark.parametrize(
    ("fdi", "letter"),
    [(55, "A"), (54, "B"), (51, "E"), (61, "F"), (65, "J"), (75, "K"), (71, "O"), (81, "P"), (85, "T"),
     (83, "R")],
)
def test_primary_universal_letters(fdi: int, letter: str) -> None:
    assert universal_label(fdi) == letter
    assert universal_label_to_fdi(letter) == fdi


def test_universal_labels_cover_both_dentitions_once() -> None:
    labels = [universal_label(f) for f in CLASS_FDI[1:]]
    assert sorted(labels[32:]) == [chr(c) for c in range(ord("A"), ord("U"))]
    assert labels[:32] == [str(fdi_to_universal(f)) for f in PERMANENT_FDI]
    assert all(universal_label_to_fdi(universal_label(f)) == f for f in CLASS_FDI[1:])


@pytest.mark.parametrize("bad", ["U", "a", "0", "33", ""])
def test_bad_universal_labels_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        universal_label_to_fdi(bad)


def test_successor() -> None:
    assert [successor(f) for f in (55, 61, 73, 84)] == [15, 21, 33, 44]
    with pytest.raises(ValueError):
        successor(16)


def test_unerupted_teeth_of_a_mixed_dentition() -> None:
    # 85 with 45 under it: 45, and behind it 47 and 48; 84 shed (44 erupted); 75 with no 35 (yet, or
    # ever): its side's molars erupted as far as the film says; 38 as a child's third molar.
    assert unerupted([85, 45, 47, 48, 44, 75, 36, 37, 38, 16]) == {45, 47, 48, 38}
    # 65 with 25 under it, but 27 not on the film: only what is there.
    assert unerupted([65, 25, 26]) == {25}
    # An adult who kept 75 (no 35 formed): nothing is unerupted by this rule.
    assert unerupted([75, 36, 37, 38, 11, 21]) == set()
    assert unerupted([11, 21, 36]) == set()


def test_missing_teeth_of_an_adult_lists_every_permanent_tooth_not_found() -> None:
    found = set(PERMANENT_FDI) - {18, 36, 41}
    assert missing_teeth(found) == [18, 36, 41]
    assert missing_teeth(set(PERMANENT_FDI)) == []


def test_missing_teeth_of_a_child_skips_positions_held_by_primary_teeth_and_third_molars() -> None:
    # Mixed dentition: incisors and first/second molars erupted, primary canines and molars still in
    # place (successors not found), 13 and 24 already replaced; 73 shed with 33 not there yet and
    # 46 absent are gaps. Third molars are not listed.
    permanent = {11, 12, 21, 22, 31, 32, 41, 42, 16, 26, 36, 17, 27, 37, 47, 13, 24}
    primary = {53, 54, 55, 63, 64, 65, 74, 75, 83, 84, 85}
    assert missing_teeth(permanent | primary) == [33, 46]
    # A primary tooth lost and its successor not there: the position is missing.
    assert missing_teeth(permanent | primary - {85}) == [33, 45, 46]
