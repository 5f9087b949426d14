"""The coded concepts of the DICOM SR against values written down from the standards, never from
the code under test.

Teeth: DICOM PS3.16 CID 4018 "Permanent Teeth" and CID 4019 "Deciduous Teeth" (SNOMED CT, scheme
SCT), keyed here by the ISO 3950 (FDI) two-digit designation: the first digit is the quadrant,
1 maxillary right, 2 maxillary left, 3 mandibular left, 4 mandibular right (5-8 the same for
the deciduous teeth), the second the tooth counted from the midline. The table is the ISO 3950
-> SNOMED CT map published for tooth body sites (for example the Belgian eHealth FHIR ConceptMap
"BeCMISOToothSnomedCT"), and each code is checked to be in pydicom's copy of PS3.16's CID
4018/4019 with the jaw and side its meaning names.

Other concepts: PS3.16 (SNOMED CT and DCM codes of TID 1410/1500 and CID 226 "Population
Statistical Descriptors" for the norm of a measurement) and UCUM unit codes (CID 7181/7183).
"""

from __future__ import annotations

import io
import re

import numpy as np
import pydicom
import pytest
from pydicom.sr._concepts_dict import concepts

from artifacts import dicom_codes
from artifacts.dicom_sr import structured_report
from artifacts.dicom_study import study_for
from dentalai.task_json import message_dict
from tests.reports import samples
from tests.reports.conftest import MODEL_CEPH, MODEL_PANO

# ISO 3950 (FDI) -> SNOMED CT code.
PERMANENT = {
    11: "422653006", 12: "424877001", 13: "860767006", 14: "57826002",
    15: "36492000", 16: "865995000", 17: "863902006", 18: "68085002",
    21: "424399000", 22: "423185002", 23: "860780009", 24: "61897005",
    25: "23226009", 26: "865988009", 27: "863901004", 28: "87704003",
    31: "425106001", 32: "423331005", 33: "860782001", 34: "2400006",
    35: "24573005", 36: "866006002", 37: "863898000", 38: "74344005",
    41: "424575004", 42: "423937004", 43: "860785004", 44: "80140008",
    45: "8873007", 46: "866005003", 47: "863899008", 48: "38994002",
}  # fmt: skip
DECIDUOUS = {
    51: "88824007", 52: "65624003", 53: "30618001", 54: "17505006", 55: "27855007",
    61: "51678005", 62: "43622005", 63: "73937000", 64: "45234009", 65: "51943008",
    71: "89552004", 72: "14770005", 73: "43281008", 74: "38896004", 75: "49330006",
    81: "67834006", 82: "22445006", 83: "6062009", 84: "58646007", 85: "61868007",
}  # fmt: skip
TEETH = {**PERMANENT, **DECIDUOUS}
# ISO 3950 quadrant -> (jaw, side) as SNOMED CT names them.
QUADRANT = {
    1: ("maxillary", "right"), 2: ("maxillary", "left"), 3: ("mandibular", "left"),
    4: ("mandibular", "right"), 5: ("maxillary", "right"), 6: ("maxillary", "left"),
    7: ("mandibular", "left"), 8: ("mandibular", "right"),
}  # fmt: skip
PERMANENT_KINDS = ("central incisor", "lateral incisor", "canine", "first premolar", "second premolar",
                   "first molar", "second molar", "third molar")  # fmt: skip
DECIDUOUS_KINDS = ("central incisor", "lateral incisor", "canine", "first molar", "second molar")

# (scheme, code value) of the other concepts the SR uses.
SCT_TOOTH = ("SCT", "38199008")  # Tooth: the finding type of a tooth's ROI group
SCT_FINDING_SITE = ("SCT", "363698007")
SCT_AREA = ("SCT", "42798000")
MEAN_OF_POPULATION = ("SCT", "373098007")  # CID 226 "Mean value of population"
SD_OF_POPULATION = ("DCM", "121414")  # CID 226 "Standard deviation of population"
DCM_FINDING = ("DCM", "121071")
DCM_TRACKING_ID = ("DCM", "112039")
DCM_TRACKING_UID = ("DCM", "112040")
DCM_IMAGE_REGION = ("DCM", "111030")
DCM_IMAGING_MEASUREMENTS = ("DCM", "126010")
DCM_MEASUREMENT_GROUP = ("DCM", "125007")
UCUM = {"deg": "deg", "mm": "mm", "percent": "%", "ratio": "1", "mm2": "mm2"}


def _pydicom_cids(scheme: str, value: str) -> tuple[str, set[int]]:
    for entry in concepts[scheme].values():
        if value in entry:
            meaning, cids = entry[value]
            return meaning, set(cids)
    raise KeyError(value)


def test_the_table_is_ps3_16s_cid_4018_and_4019() -> None:
    """The table above, checked against pydicom's copy of PS3.16 (not the product's reading of it):
    each code is in the right context group and its meaning names the quadrant's jaw and side and
    the tooth's kind."""
    assert sorted(PERMANENT) == [10 * q + t for q in (1, 2, 3, 4) for t in range(1, 9)]
    assert sorted(DECIDUOUS) == [10 * q + t for q in (5, 6, 7, 8) for t in range(1, 6)]
    assert len(set(TEETH.values())) == len(TEETH)
    for fdi, code in TEETH.items():
        quadrant, position = divmod(fdi, 10)
        meaning, cids = _pydicom_cids("SCT", code)
        assert (4018 if fdi in PERMANENT else 4019) in cids, (fdi, code, meaning)
        jaw, side = QUADRANT[quadrant]
        words = meaning.lower()
        assert re.search(rf"\b{jaw} {side}\b", words), (fdi, meaning)
        kind = (PERMANENT_KINDS if fdi in PERMANENT else DECIDUOUS_KINDS)[position - 1]
        first = kind.split()[0]  # PS3.16 writes "Mandibular left lateral tooth" for 32
        assert first in words and "tooth" in words, (fdi, meaning)
        assert ("deciduous" in words) == (fdi in DECIDUOUS), (fdi, meaning)


@pytest.mark.parametrize("fdi", sorted(TEETH))
def test_each_tooth_has_its_snomed_code(fdi: int) -> None:
    concept = dicom_codes.tooth(fdi)
    assert (concept.scheme_designator, concept.value) == ("SCT", TEETH[fdi])


@pytest.mark.parametrize("fdi", [0, 10, 19, 49, 50, 56, 86, 91])
def test_no_code_for_a_number_that_is_not_a_tooth(fdi: int) -> None:
    with pytest.raises(ValueError):
        dicom_codes.tooth(fdi)


def test_unit_codes_are_ucum() -> None:
    for unit, code in UCUM.items():
        concept = dicom_codes.unit(unit)
        assert (concept.scheme_designator, concept.value) == ("UCUM", code), unit


# ---- in the SR files ----------------------------------------------------------------------------


def _items(ds):
    """Every content item of the SR tree, depth first."""
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _items(item)


def _key(code) -> tuple[str, str]:
    return (code.CodingSchemeDesignator, code.CodeValue)


def _name(item) -> tuple[str, str]:
    return _key(item.ConceptNameCodeSequence[0])


def _sr(kind: str, data: dict) -> pydicom.Dataset:
    width, height = (64, 32) if kind == "pano" else (48, 60)  # the SR refers to a capture of it
    pixels = np.full((height, width), 90, np.uint8)
    study = study_for(b"", pixels, "png", f"{kind}-codes", 0.1, ("P", "F"))
    model = MODEL_PANO if kind == "pano" else MODEL_CEPH
    return pydicom.dcmread(io.BytesIO(structured_report(kind, data, study, model)))


def _groups(ds) -> dict[str, object]:
    """Measurement groups by their tracking identifier."""
    out = {}
    for item in _items(ds):
        if item.ValueType == "CONTAINER" and _name(item) == DCM_MEASUREMENT_GROUP:
            (tracking,) = [c for c in item.ContentSequence if _name(c) == DCM_TRACKING_ID]
            out[tracking.TextValue] = item
    return out


def test_pano_sr_teeth_finding_sites_and_missing_teeth_carry_the_standard_codes() -> None:
    data = samples.pano_result(missing=(18, 38, 25))
    ds = _sr("pano", data)
    assert ds.ContentSequence and _name(ds) == ("DCM", "126000")  # TID 1500 Imaging Measurement Report
    groups = _groups(ds)
    for tooth in data["teeth"]:
        group = groups[f"tooth {tooth['fdi']}"]
        children = {_name(c): c for c in group.ContentSequence}
        assert _key(children[DCM_FINDING].ConceptCodeSequence[0]) == SCT_TOOTH
        site = children[SCT_FINDING_SITE].ConceptCodeSequence[0]
        assert _key(site) == ("SCT", TEETH[tooth["fdi"]]), tooth["fdi"]
        assert DCM_TRACKING_UID in children and DCM_IMAGE_REGION in children
        area = children[SCT_AREA]
        assert area.ValueType == "NUM"
    (finding,) = [g for name, g in groups.items() if name.startswith("finding")]
    children = {_name(c): c for c in finding.ContentSequence}
    assert _key(children[SCT_FINDING_SITE].ConceptCodeSequence[0]) == ("SCT", TEETH[36])
    area = children[SCT_AREA].MeasuredValueSequence[0]
    assert _key(area.MeasurementUnitsCodeSequence[0]) == ("UCUM", "mm2")
    (dentition,) = [g for name, g in groups.items() if name == "dentition"]
    missing = sorted(
        c.ConceptCodeSequence[0].CodeValue for c in dentition.ContentSequence if c.ValueType == "CODE"
    )
    assert missing == sorted(TEETH[f] for f in (18, 25, 38))


def test_universal_numbered_missing_teeth_get_the_codes_of_their_teeth() -> None:
    """Universal 1 is the upper right third molar (18), 16 upper left (28), 17 lower left (38), 32
    lower right (48): the codes follow the tooth, not the number."""
    data = samples.pano_result(missing=())
    data["numbering"] = "UNIVERSAL"
    data["missingTeeth"] = [1, 16, 17, 32]
    (dentition,) = [g for n, g in _groups(_sr("pano", data)).items() if n == "dentition"]
    missing = {c.ConceptCodeSequence[0].CodeValue for c in dentition.ContentSequence if c.ValueType == "CODE"}
    assert missing == {TEETH[18], TEETH[28], TEETH[38], TEETH[48]}


def test_primary_teeth_are_coded_as_deciduous_teeth() -> None:
    data = samples.pano_result(missing=())
    data["teeth"] = data["teeth"][:4]
    for tooth, fdi in zip(data["teeth"], (55, 61, 73, 84), strict=True):
        tooth["fdi"] = tooth["number"] = fdi
    data["findings"] = []
    groups = _groups(_sr("pano", data))
    for fdi in (55, 61, 73, 84):
        children = {_name(c): c for c in groups[f"tooth {fdi}"].ContentSequence}
        assert _key(children[SCT_FINDING_SITE].ConceptCodeSequence[0]) == ("SCT", TEETH[fdi]), fdi


def test_ceph_sr_units_and_norms_carry_the_standard_codes() -> None:
    data = message_dict(samples.ceph_result())
    ds = _sr("ceph", data)
    assert any(_name(i) == DCM_IMAGING_MEASUREMENTS for i in _items(ds))
    by_meaning = {
        i.ConceptNameCodeSequence[0].CodeMeaning: i for i in _items(ds) if i.ValueType == "NUM"
    }
    checked = 0
    for m in data["measurements"]:
        item = by_meaning[m["name"][:64]]
        unit = item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
        assert _key(unit) == ("UCUM", UCUM[m["unit"]]), m["id"]
        norm = m.get("norm") or {}
        if not norm.get("sd"):
            continue
        stats = {_name(c): c for c in item.ContentSequence if c.ValueType == "NUM"}
        assert set(stats) == {MEAN_OF_POPULATION, SD_OF_POPULATION}, (m["id"], set(stats))
        mean = stats[MEAN_OF_POPULATION].MeasuredValueSequence[0]
        sd = stats[SD_OF_POPULATION].MeasuredValueSequence[0]
        assert float(mean.NumericValue) == pytest.approx(norm["mean"], abs=1e-6)
        assert float(sd.NumericValue) == pytest.approx(norm["sd"], abs=1e-6)
        assert _key(mean.MeasurementUnitsCodeSequence[0]) == ("UCUM", UCUM[m["unit"]])
        checked += 1
    assert checked >= 10  # the norms of Steiner, Downs, Tweed... were all looked at
    for item in _items(ds):
        if _name(item) == SCT_FINDING_SITE or item.ValueType != "NUM":
            continue
        for unit in item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence:
            assert unit.CodingSchemeDesignator == "UCUM"
