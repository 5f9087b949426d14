from pano_helpers import W, cand, full_mouth

from pipelines.pano.numbering import PERMANENT_FDI
from pipelines.pano.postrules import renumber


def test_consistent_dentition_is_left_alone() -> None:
    assert renumber(full_mouth(), W) == list(PERMANENT_FDI)


def test_tooth_in_wrong_quadrant_moves_to_its_side() -> None:
    # The model called the tooth at 14's place "24" (right side of the patient = image left).
    cands = [c for c in full_mouth() if c.label != 4] + [cand(14, 24)]
    numbers = renumber(cands, W)
    assert numbers[-1] == 14
    assert sorted(numbers) == list(PERMANENT_FDI)


def test_tooth_in_wrong_jaw_moves_to_its_jaw() -> None:
    cands = [c for c in full_mouth() if c.label != 6] + [cand(16, 46)]
    numbers = renumber(cands, W)
    assert numbers[-1] == 16
    assert len(set(numbers)) == 32


def test_duplicate_numbers_are_resolved_along_the_arch() -> None:
    # 15 is read as a second 14 (with a little evidence for 15): it must become 15, not stay twice 14.
    cands = [cand(f, f) for f in (11, 12, 13, 14, 16, 17)] + [cand(15, 14, confidence=0.7, second=15)]
    numbers = renumber(cands, W)
    assert numbers == [11, 12, 13, 14, 16, 17, 15]


def test_duplicates_with_a_gap_keep_the_order() -> None:
    # Teeth at 21 and 22 both read "21"; 23 absent. Order from the midline gives 21 then 22.
    cands = [cand(21, 21), cand(22, 21, confidence=0.6, second=22), cand(24, 24)]
    assert renumber(cands, W) == [21, 22, 24]


def test_more_candidates_than_numbers_drops_the_weakest_fit() -> None:
    cands = [cand(f, f) for f in range(11, 19)]
    extra = cand(18, 18)
    extra.cx += 20  # a ninth object beyond 18
    numbers = renumber(cands + [extra], W)
    assert numbers.count(None) == 1
    assert sorted(n for n in numbers if n) == list(range(11, 19))


def test_empty() -> None:
    assert renumber([], W) == []
