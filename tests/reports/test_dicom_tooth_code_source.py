"""Tooth codes come from PS3.16's tooth context groups only (CID 4018 permanent, 4019 deciduous):
a SNOMED CT concept elsewhere in pydicom's table whose name reads like a tooth (a future pydicom,
another context group) never replaces one. Found unguarded by mutation testing (tools/mutants.yaml):
today's table has no such concept, so the filter is checked with one planted in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.sr._concepts_dict import concepts

from artifacts import dicom_codes


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    look_alike = {
        "999999001": ("Permanent maxillary right central incisor tooth", [9999]),
        "999999002": ("Deciduous mandibular left canine tooth", [9999]),
    }
    monkeypatch.setitem(concepts["SCT"], "ToothLookAlikesOutsideTheToothGroups", look_alike)
    dicom_codes._teeth.cache_clear()  # the table is read once per process
    yield
    dicom_codes._teeth.cache_clear()


def test_only_cid_4018_and_4019_concepts_code_teeth(planted: None) -> None:
    assert dicom_codes.tooth(11).value == "422653006"  # PS3.16 CID 4018
    assert dicom_codes.tooth(73).value == "43281008"  # PS3.16 CID 4019
    assert dicom_codes.tooth(33).value == "860782001"
    assert len(dicom_codes._teeth()) == 52
