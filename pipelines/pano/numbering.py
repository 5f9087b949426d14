"""Tooth numbering: model channel order, FDI <-> Universal, permanent and primary dentition.

FDI quadrants 1-4 hold the permanent teeth (1-8 from the midline out), 5-8 the primary teeth
(1-5) on the same sides: 5 upper right, 6 upper left, 7 lower left, 8 lower right. A primary tooth
p (51-55 ...) is the predecessor of the permanent tooth in the same position (11-15 ...).
"""

from __future__ import annotations

from collections.abc import Iterable

PERMANENT_FDI: tuple[int, ...] = tuple(10 * q + t for q in (1, 2, 3, 4) for t in range(1, 9))
PRIMARY_FDI: tuple[int, ...] = tuple(10 * q + t for q in (5, 6, 7, 8) for t in range(1, 6))
# Model channel i -> FDI number (0 = background). The permanent channels keep v1's order (1-32).
CLASS_FDI: tuple[int, ...] = (0,) + PERMANENT_FDI + PRIMARY_FDI
# Quadrant of a primary tooth -> quadrant of the permanent teeth on the same side and jaw.
PERMANENT_QUADRANT = {5: 1, 6: 2, 7: 3, 8: 4}
PRIMARY_QUADRANT = {v: k for k, v in PERMANENT_QUADRANT.items()}
# Universal letters of the primary teeth, in the same order as the numbers 1-32: upper right to
# upper left (A = 55 ... J = 65), then lower left to lower right (K = 75 ... T = 85).
_PRIMARY_ORDER = (55, 54, 53, 52, 51, 61, 62, 63, 64, 65, 75, 74, 73, 72, 71, 81, 82, 83, 84, 85)
_PRIMARY_LETTER = {fdi: chr(ord("A") + k) for k, fdi in enumerate(_PRIMARY_ORDER)}
_LETTER_PRIMARY = {v: k for k, v in _PRIMARY_LETTER.items()}


def is_primary(fdi: int) -> bool:
    return fdi in _PRIMARY_LETTER


def side_quadrant(fdi: int) -> int:
    """The permanent quadrant (1-4) of a tooth's side and jaw, for primary teeth too."""
    q = fdi // 10
    return PERMANENT_QUADRANT.get(q, q)


def successor(fdi: int) -> int:
    """Permanent successor of a primary tooth (55 -> 15, 71 -> 31)."""
    if not is_primary(fdi):
        raise ValueError(f"not a primary FDI number: {fdi}")
    return 10 * PERMANENT_QUADRANT[fdi // 10] + fdi % 10


def unerupted(fdis: Iterable[int]) -> set[int]:
    """The permanent teeth among `fdis` that are still in the bone (mixed dentition):
    - a successor whose primary predecessor is there too (45 with 85);
    - the second and third molars of a quadrant whose second premolar is such a successor: in the
      usual eruption sequences (upper 6-1-2-4-3-5-7, lower 6-1-2-3-4-5-7) the second molar comes
      through after the second premolar, and the third molar years later;
    - every third molar when any successor is unerupted: a child's film.
    A primary tooth kept into adulthood with no successor under it (agenesis) implies nothing."""
    found = set(fdis)
    waiting = {successor(f) for f in found if is_primary(f)} & found
    if not waiting:
        return set()
    late = {10 * q + 7 for q in (1, 2, 3, 4) if 10 * q + 5 in waiting} | {18, 28, 38, 48}
    return waiting | (late & found)


def fdi_to_universal(fdi: int) -> int:
    """Universal (ADA) numbers 1-32: upper right 18 -> 1 ... upper left 28 -> 16, lower left 38 -> 17
    ... lower right 48 -> 32. Permanent teeth only; primary teeth have letters (universal_label)."""
    quadrant, tooth = divmod(fdi, 10)
    if quadrant not in (1, 2, 3, 4) or not 1 <= tooth <= 8:
        raise ValueError(f"not a permanent FDI number: {fdi}")
    if quadrant == 1:
        return 9 - tooth
    if quadrant == 2:
        return 8 + tooth
    if quadrant == 3:
        return 25 - tooth
    return 24 + tooth


def universal_to_fdi(number: int) -> int:
    if not 1 <= number <= 32:
        raise ValueError(f"not a Universal number: {number}")
    if number <= 8:
        return 10 + (9 - number)
    if number <= 16:
        return 20 + (number - 8)
    if number <= 24:
        return 30 + (25 - number)
    return 40 + (number - 24)


def universal_label(fdi: int) -> str:
    """Universal designation as text: '1'-'32' for permanent teeth, 'A'-'T' for primary teeth."""
    if is_primary(fdi):
        return _PRIMARY_LETTER[fdi]
    return str(fdi_to_universal(fdi))


def universal_label_to_fdi(label: str) -> int:
    if label in _LETTER_PRIMARY:
        return _LETTER_PRIMARY[label]
    if not label.isdigit():
        raise ValueError(f"not a Universal designation: {label!r}")
    return universal_to_fdi(int(label))


def mirror_fdi(fdi: int) -> int:
    """The same tooth on the other side (11 <-> 21, 36 <-> 46, 55 <-> 65, 71 <-> 81); used by
    flip augmentation and the mirrored inference pass."""
    quadrant, tooth = divmod(fdi, 10)
    return 10 * {1: 2, 2: 1, 3: 4, 4: 3, 5: 6, 6: 5, 7: 8, 8: 7}[quadrant] + tooth


def missing_teeth(found: set[int]) -> list[int]:
    """Permanent teeth (FDI, sorted) not found, judged for the dentition shown.

    Adult (no primary tooth found): every permanent tooth not found. Child or mixed dentition (at
    least one primary tooth found): a position held by its primary predecessor is not missing (the
    successor may not have formed or be visible yet), and third molars (18, 28, 38, 48) are never
    listed, since they form in adolescence. Primary teeth themselves are never listed: a primary
    tooth not found may have been shed normally.
    """
    primary = {f for f in found if is_primary(f)}
    if not primary:
        return [f for f in PERMANENT_FDI if f not in found]
    held = found | {successor(f) for f in primary}
    return [f for f in PERMANENT_FDI if f not in held and f % 10 != 8]
