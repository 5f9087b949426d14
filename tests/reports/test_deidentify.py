"""De-identified artifacts (issue 31 item 4): a DICOM input carrying a test patient's identifiers,
made into artifacts with the task's policy on (DICOM PS3.15 Basic Profile, artifacts/deidentify.py)
and off (the identifiers stay, as before). The DICOM files are searched as raw bytes too, and
checked by dciodvfy; the PDF is read back with pdftotext and prints only the allowed metadata."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from artifacts.deidentify import DUMMY_DATE, DUMMY_TIME, Pseudonyms
from artifacts.make import Source, make_artifacts
from dentalai.task_json import message_dict
from tests.reports import samples
from tests.reports.conftest import MAX_SIDE, MODEL_CEPH, write
from tests.security.dicom_samples import native

DICOM_FILES = ("report.dcm", "overlay.dcm", "image.dcm")
# The test patient, and everything else in the input's header that names a person or a place.
IDENTIFIERS = {
    "PatientName": "Doe^Jane",
    "PatientID": "P-0042",
    "PatientBirthDate": "19900101",
    "PatientSex": "F",
    "AccessionNumber": "ACC-9931",
    "ReferringPhysicianName": "Who^Doctor",
    "StudyID": "STUDY-77",
    "StudyDate": "20261201",
    "StudyTime": "101500",
    "OtherPatientIDs": "OTHER-0815",
    "InstitutionName": "Clinic Nowhere",
    "OperatorsName": "Op^Erator",
    "PerformingPhysicianName": "Perf^Ormer",
}
SECRETS = [b"Doe", b"Jane", b"P-0042", b"19900101", b"ACC-9931", b"Who^Doctor", b"STUDY-77", b"20261201",
           b"OTHER-0815", b"Clinic Nowhere", b"Op^Erator", b"Perf^Ormer"]  # fmt: skip
# The caller's metadata: two fields name the patient, one is allowed on the PDF.
METADATA = {"patientRef": "P-0042", "patientName": "Jane Doe", "clinic": "Zürich Süd"}
ALLOWED = ("clinic",)
TASK = "ceph-deid-1"
POPPLER = shutil.which("pdftotext") is not None
DCIODVFY = shutil.which("dciodvfy")


def dicom_input() -> tuple[bytes, pydicom.Dataset]:
    raw = native(
        np.ascontiguousarray(samples.ceph_image(), dtype=np.uint8), ExplicitVRLittleEndian,
        StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), PixelSpacing=[0.1, 0.1],
        **IDENTIFIERS,
    )  # fmt: skip
    return raw, pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)


def make(raw: bytes, fmt: str, deidentify: bool, owner: str = "client-a", task: str = TASK) -> dict:
    data = message_dict(samples.ceph_result())
    src = Source(
        "ceph", data, samples.ceph_image(), raw, fmt, task, METADATA, MODEL_CEPH,
        deidentify=deidentify, pdf_metadata_keys=ALLOWED, owner=owner,
    )  # fmt: skip
    return make_artifacts(src, MAX_SIDE)


@pytest.fixture(scope="module")
def source() -> tuple[bytes, pydicom.Dataset]:
    return dicom_input()


@pytest.fixture(scope="module")
def deid(source) -> dict[str, bytes]:
    return make(source[0], "dicom", deidentify=True)


@pytest.fixture(scope="module")
def kept(source) -> dict[str, bytes]:
    return make(source[0], "dicom", deidentify=False)


def read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def pdf_text(tmp_path: Path, data: bytes) -> str:
    pdf = write(tmp_path, "report.pdf", data)
    out = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


@pytest.mark.parametrize("name", DICOM_FILES)
def test_no_identifier_of_the_input_is_in_any_byte(deid, source, name: str):
    data = deid[name]
    for secret in SECRETS:
        assert secret not in data, (name, secret)
    header = source[1]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert str(header[keyword].value).encode() not in data, (name, keyword)
    assert TASK.encode() not in data  # a taskId may name the patient too


@pytest.mark.parametrize("name", DICOM_FILES)
def test_files_say_they_are_deidentified_and_carry_no_date(deid, name: str):
    ds = read(deid[name])
    assert ds.PatientIdentityRemoved == "YES"
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence]
    assert ("113100", "DCM") in codes  # CID 7050: Basic Application Confidentiality Profile
    assert "Basic Application Confidentiality Profile" in ds.DeidentificationMethod
    for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName"):
        assert ds[keyword].is_empty, keyword  # Z: present (type 2), empty
    assert str(ds.PatientID).startswith("ANON") and str(ds.PatientName) == f"{ds.PatientID}^"
    for elem in ds.iterall():  # every date and time: the dummy, or none
        if elem.VR in ("DA", "TM", "DT") and not elem.is_empty:
            assert str(elem.value) in (DUMMY_DATE, DUMMY_TIME, DUMMY_DATE + DUMMY_TIME), elem
    for keyword in ("InstanceCreationDate", "InstanceCreationTime", "InstitutionName", "OperatorsName",
                    "OtherPatientIDs", "PerformingPhysicianName"):  # fmt: skip
        assert keyword not in ds, keyword


def test_uids_are_replaced_consistently_in_the_set(deid, source):
    header = source[1]
    sr, overlay, image = (read(deid[n]) for n in DICOM_FILES)
    pseudonyms = Pseudonyms.for_task("client-a", TASK, source[0])
    study = pseudonyms.replace(str(header.StudyInstanceUID))
    assert study != header.StudyInstanceUID and study.startswith("2.25.")
    assert sr.StudyInstanceUID == overlay.StudyInstanceUID == image.StudyInstanceUID == study
    # The SR refers to image.dcm, whose UIDs replace the input's own, in its evidence and coordinates.
    assert image.SOPInstanceUID == pseudonyms.replace(str(header.SOPInstanceUID)) != header.SOPInstanceUID
    assert image.SeriesInstanceUID == pseudonyms.replace(str(header.SeriesInstanceUID))
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == study
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == image.SeriesInstanceUID
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        image.SOPInstanceUID
    )
    referenced = {
        elem.value for elem in sr.iterall() if elem.keyword == "ReferencedSOPInstanceUID"
    }  # the evidence and every SCOORD of the content tree
    assert referenced == {image.SOPInstanceUID}
    files = (sr, overlay, image)
    assert len({ds.SOPInstanceUID for ds in files} | {ds.SeriesInstanceUID for ds in files}) == 6


def test_a_retry_gives_the_same_uids_and_another_client_other_ones(deid, source):
    """Made again for the same task (a retry), the files are the same instances; the same taskId
    of another client gives other UIDs (two clients may use one taskId)."""
    again = make(source[0], "dicom", deidentify=True)
    other = make(source[0], "dicom", deidentify=True, owner="client-b")
    for name in DICOM_FILES:
        first, second, third = read(deid[name]), read(again[name]), read(other[name])
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientID"):
            assert first[keyword].value == second[keyword].value, (name, keyword)
            assert first[keyword].value != third[keyword].value, (name, keyword)


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install dicom3tools")
@pytest.mark.parametrize("name", DICOM_FILES)
def test_dciodvfy_finds_no_error_in_the_deidentified_files(deid, name: str, tmp_path: Path):
    path = write(tmp_path, name, deid[name])
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, "\n".join(errors)
    assert lines, "dciodvfy printed nothing"


def test_a_png_input_gets_no_task_id_as_patient_or_study(tmp_path: Path):
    """The capture of a PNG names no patient either: today's PatientID and StudyID were the taskId."""
    files = make(b"", "png", deidentify=True, task="P-0042-ceph")
    for name in DICOM_FILES:
        assert b"P-0042" not in files[name], name
        assert read(files[name]).PatientIdentityRemoved == "YES"


@pytest.mark.skipif(not POPPLER, reason="poppler-utils missing: apt-get install poppler-utils")
@pytest.mark.parametrize("policy", ["deid", "kept"])
def test_the_pdf_prints_only_the_allowed_metadata(policy: str, request, tmp_path: Path):
    text = pdf_text(tmp_path, request.getfixturevalue(policy)["report.pdf"])
    assert "Zürich Süd" in text  # allowed: printed
    for needle in ("P-0042", "Jane Doe", "Doe^Jane", "Doe", "19900101"):  # not allowed, or from the header
        assert needle not in text, needle
    assert "clinic" in text and "patientRef" not in text and "patientName" not in text


def test_with_deidentify_off_the_identifiers_stay(kept, source):
    """Today's behaviour: the files join the input's study and copy its patient and study modules."""
    header = source[1]
    assert "image.dcm" not in kept
    for name in ("report.dcm", "overlay.dcm"):
        ds = read(kept[name])
        assert ds.StudyInstanceUID == header.StudyInstanceUID
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                        "ReferringPhysicianName"):  # fmt: skip
            assert ds[keyword].value == header[keyword].value, (name, keyword)
        assert b"P-0042" in kept[name] and b"Doe^Jane" in kept[name]
        assert "PatientIdentityRemoved" not in ds
