"""Edentulous jaws: which jaws of a panoramic hold no tooth, from the evidence on the film.

A jaw is edentulous when (a) no tooth of it was found and (b) the tooth model sees no tooth there
either: the model's probability for that jaw's teeth (FDI quadrants 1, 2, 5, 6 upper; 3, 4, 7, 8
lower), summed over the whole film, is below about one tooth's worth (`max_mass`, model pixels).
(b) keeps a jaw whose teeth the model sees but could not outline with confidence (a root remnant
numbered, faint teeth) from being called edentulous. That the jaws are there at all is the film
check's part (`film_check.py`): the pipeline asks this only of films that look like a panoramic.
Implants and bridges are not teeth to the model most of the time, so a jaw restored with implants
alone may be called edentulous (which, clinically, it is: pano-teeth's card).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.pano.numbering import CLASS_FDI, side_quadrant

JAWS = ("upper", "lower")


def jaw_of(fdi: int) -> str:
    return "upper" if side_quadrant(fdi) in (1, 2) else "lower"


def jaw_channels(channels: int) -> dict[str, list[int]]:
    """Channel indices of each jaw's teeth among the first `channels` of CLASS_FDI."""
    return {jaw: [k for k in range(1, channels) if jaw_of(CLASS_FDI[k]) == jaw] for jaw in JAWS}


def jaw_mass(probs: np.ndarray, jaw: str) -> float:
    """The tooth model's probability for `jaw`'s teeth summed over the film (model pixels); `probs`
    is the softmax (C, H, W)."""
    return float(sum(float(probs[k].sum(dtype=np.float64)) for k in jaw_channels(len(probs))[jaw]))


def edentulous_jaws(found: Sequence[int], probs: np.ndarray, max_mass: float) -> list[str]:
    """The jaws (JAWS order) with no tooth among `found` (FDI numbers) and a jaw mass below `max_mass`."""
    with_teeth = {jaw_of(f) for f in found}
    return [jaw for jaw in JAWS if jaw not in with_teeth and jaw_mass(probs, jaw) < max_mass]
