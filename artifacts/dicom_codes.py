"""Coded concepts of the DICOM artifacts: SNOMED CT teeth by FDI number, UCUM units, and the
project's private scheme (99DENTALAI, declared in the SR) for landmarks, measurements and classes,
which have no standard codes."""

from __future__ import annotations

import re
from functools import cache

from highdicom.sr import CodedConcept
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.codedict import codes

SCHEME = "99DENTALAI"
SCHEME_NAME = "dentalai cephalometric and dental concepts"
_QUADRANT = {
    ("maxillary", "right"): 1,
    ("maxillary", "left"): 2,
    ("mandibular", "left"): 3,
    ("mandibular", "right"): 4,
}
_PERMANENT = (
    "central",
    "lateral",
    "canine",
    "first premolar",
    "second premolar",
    "first molar",
    "second molar",
    "third molar",
)
_PRIMARY = ("central", "lateral", "canine", "first molar", "second molar")
_MEANING = re.compile(r"^(permanent |deciduous )?(maxillary|mandibular) (right|left) (.+) tooth$")
# UCUM codes of the result's units (CONTRACT section 6); "ratio" is dimensionless.
UNITS = {
    "deg": ("deg", "degree"),
    "mm": ("mm", "millimeter"),
    "percent": ("%", "percent"),
    "ratio": ("1", "no units"),
    "mm2": ("mm2", "square millimeter"),
    "px": ("{pixels}", "pixels"),
    "px2": ("{pixels}", "pixels"),
}


def local(value: str, meaning: str) -> CodedConcept:
    """A concept of the private scheme; the value is made a safe code (letters, digits, -)."""
    code = re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-")[:16] or "none"
    return CodedConcept(code, SCHEME, meaning[:64] or code)


def unit(name: str) -> CodedConcept:
    value, meaning = UNITS.get(name, ("1", "no units"))
    return CodedConcept(value, "UCUM", meaning)


@cache
def _teeth() -> dict[int, CodedConcept]:
    """FDI number -> concept, read from pydicom's copy of CID 4018/4019 (their SNOMED names are
    irregular: "Permanent maxillary ...", "Mandibular left lateral tooth")."""
    found: dict[int, CodedConcept] = {}
    for entry in concepts["SCT"].values():
        for value, (meaning, cids) in entry.items():
            match = _MEANING.match(meaning.lower())
            if not match or not {4018, 4019} & set(cids):
                continue
            primary = 4019 in cids
            quadrant = _QUADRANT[(match[2], match[3])] + (4 if primary else 0)
            kind = match[4]
            names = _PRIMARY if primary else _PERMANENT
            position = next((i + 1 for i, n in enumerate(names) if kind.startswith(n)), 0)
            if position:
                found[10 * quadrant + position] = CodedConcept(value, "SCT", meaning)
    return found


def tooth(fdi: int) -> CodedConcept:
    """SNOMED CT code of a tooth (CID 4018 permanent, 4019 deciduous) from its FDI number."""
    try:
        return _teeth()[int(fdi)]
    except KeyError:
        raise ValueError(f"not an FDI tooth number: {fdi}") from None


TOOTH = CodedConcept(codes.SCT.Tooth.value, "SCT", "Tooth")
