"""Tooth numbering: model channel order, FDI <-> Universal, the permanent dentition."""

from __future__ import annotations

# Model channel i -> FDI number (0 = background). Quadrants 1..4, teeth 1..8 in each.
CLASS_FDI: tuple[int, ...] = (0,) + tuple(10 * q + t for q in (1, 2, 3, 4) for t in range(1, 9))
PERMANENT_FDI: tuple[int, ...] = CLASS_FDI[1:]


def fdi_to_universal(fdi: int) -> int:
    """Universal (ADA) numbers 1-32: upper right 18 -> 1 ... upper left 28 -> 16, lower left 38 -> 17
    ... lower right 48 -> 32."""
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


def mirror_fdi(fdi: int) -> int:
    """The same tooth on the other side (11 <-> 21, 36 <-> 46); used by flip augmentation."""
    quadrant, tooth = divmod(fdi, 10)
    return 10 * {1: 2, 2: 1, 3: 4, 4: 3}[quadrant] + tooth
