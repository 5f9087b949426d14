from pano_helpers import W, cand, full_mouth

from pipelines.pano.numbering import PERMANENT_FDI
from pipelines.pano.postrules import GAP_PRIOR, GapPrior, renumber


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


def test_primary_tooth_and_its_successor_are_both_numbered() -> None:
    # Mixed dentition: 55 above its successor 15, 85 below 45; numbered separately, not as duplicates.
    cands = full_mouth() + [cand(55, 55), cand(85, 85), cand(64, 64)]
    numbers = renumber(cands, W)
    assert numbers[:32] == list(PERMANENT_FDI)
    assert numbers[32:] == [55, 85, 64]


def test_primary_tooth_on_the_wrong_side_moves_to_its_side() -> None:
    # The model read the primary molar at 54's place (patient's right, image left) as "64".
    cands = full_mouth() + [cand(55, 55), cand(54, 64), cand(65, 65)]
    assert renumber(cands, W)[32:] == [55, 54, 65]


def test_primary_duplicates_are_resolved_along_the_arch() -> None:
    # Two lower-left primary molars both read "74" (the outer one with some evidence for 75).
    cands = [cand(73, 73), cand(74, 74), cand(75, 74, confidence=0.6, second=75)]
    assert renumber(cands, W) == [73, 74, 75]


def test_a_primary_quadrant_takes_at_most_five_teeth() -> None:
    cands = [cand(f, f) for f in range(51, 56)]
    extra = cand(55, 55)
    extra.cx -= 24  # a sixth primary-looking object beyond 55
    numbers = renumber(cands + [extra], W)
    assert numbers.count(None) == 1
    assert sorted(n for n in numbers if n) == list(range(51, 56))


def test_a_space_where_a_tooth_is_missing_moves_the_numbers_past_it() -> None:
    # 16 is missing and its space is open; the model hesitates between shifting 17 and 18 down to 16
    # and 17 (as if 18 were the missing one, the commoner case) and the right numbers.
    cands = [cand(f, f) for f in (11, 12, 13, 14, 15)]
    cands += [cand(17, 16, confidence=0.35, second=17), cand(18, 17, confidence=0.35, second=18)]
    without_gaps = GapPrior(GAP_PRIOR.ratio, GAP_PRIOR.dof, weight=0.0)
    assert renumber(cands, W, without_gaps)[5:] == [16, 17]
    assert renumber(cands, W)[5:] == [17, 18]


def test_neighbours_that_touch_keep_the_models_numbers() -> None:
    # The same hesitation with no space (16 present): the gaps say no tooth is missing.
    cands = [cand(f, f) for f in (11, 12, 13, 14, 15)]
    cands += [cand(16, 16, confidence=0.35, second=17), cand(17, 17, confidence=0.35, second=18)]
    assert renumber(cands, W)[5:] == [16, 17]
