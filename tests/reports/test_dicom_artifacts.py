"""The SR and Secondary Captures read back with highdicom/pydicom against the JSON result, and
checked by Debian's dciodvfy (dicom3tools): any "Error" line fails."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from artifacts import dicom_codes
from tests.reports.conftest import MODEL_CEPH, write

UCUM = {"deg": "deg", "mm": "mm", "percent": "%", "ratio": "1"}


def report(data: bytes) -> tuple[pydicom.Dataset, hd.sr.MeasurementReport]:
    ds = pydicom.dcmread(io.BytesIO(data))
    sr = hd.sr.ComprehensiveSR.from_dataset(ds)
    return ds, hd.sr.MeasurementReport.from_sequence(sr.content)


def test_ceph_sr_has_every_landmark_measurement_and_class(ceph_png):
    data, files = ceph_png
    ds, content = report(files["report.dcm"])
    assert ds.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = {g.tracking_identifier: g for g in content.get_planar_roi_measurement_groups()}
    assert len(groups) == len(data["landmarks"]) == 19
    for lm in data["landmarks"]:
        group = groups[f"landmark {lm['id']}"]
        assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POINT
        np.testing.assert_allclose(group.roi.value, [[lm["x"], lm["y"]]], rtol=1e-6)
        assert group.finding_type.value == lm["id"] or group.finding_type.meaning == lm["name"]
        (confidence,) = group.get_measurements()
        assert confidence.value == pytest.approx(lm["confidence"])
    (analysis,) = content.get_image_measurement_groups()
    measured = {m.name.meaning: m for m in analysis.get_measurements()}
    assert len(measured) == len(data["measurements"])
    for m in data["measurements"]:
        item = measured[m["name"]]
        assert item.value == pytest.approx(m["value"])
        assert item.unit.value == UCUM[m["unit"]]
        assert item.unit.scheme_designator == "UCUM"
    evaluations = {e.name.meaning: e.value.meaning for e in analysis.get_qualitative_evaluations()}
    for m in data["measurements"]:
        assert evaluations[f"{m['name']} interpretation"] == m["interpretation"][:64]
    for c in data["classifications"]:
        assert evaluations[f"{c['name']} class"] == c["label"]
    assert evaluations["Skeletal class"] == data["summary"]["skeletalClass"]
    assert evaluations["Vertical pattern"] == data["summary"]["verticalPattern"]
    algorithm = ds.ContentSequence  # the model is named in the document
    assert MODEL_CEPH["name"] in str(algorithm) and MODEL_CEPH["version"] in str(algorithm)


def test_pano_sr_has_every_tooth_with_its_number_and_the_findings(pano_png):
    data, files = pano_png
    _, content = report(files["report.dcm"])
    groups = {g.tracking_identifier: g for g in content.get_planar_roi_measurement_groups()}
    for tooth in data["teeth"]:
        group = groups[f"tooth {tooth['fdi']}"]
        assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        (site,) = group.finding_sites
        assert site.value.value == dicom_codes.tooth(tooth["fdi"]).value
        ring = np.array(tooth["polygon"] + [tooth["polygon"][0]])
        np.testing.assert_allclose(group.roi.value, ring, rtol=1e-5)
    (finding,) = [g for name, g in groups.items() if name.startswith("finding")]
    assert finding.finding_type.meaning == "caries"
    assert finding.finding_sites[0].value.value == dicom_codes.tooth(36).value
    assert len(groups) == len(data["teeth"]) + 1
    (dentition,) = content.get_image_measurement_groups()
    missing = sorted(e.value.value for e in dentition.get_qualitative_evaluations())
    assert missing == sorted(dicom_codes.tooth(f).value for f in data["missingTeeth"])


def test_non_dicom_input_gets_a_new_study_with_a_capture_of_it(ceph_png):
    _, files = ceph_png
    sr = pydicom.dcmread(io.BytesIO(files["report.dcm"]))
    image = pydicom.dcmread(io.BytesIO(files["image.dcm"]))
    overlay = pydicom.dcmread(io.BytesIO(files["overlay.dcm"]))
    assert sr.StudyInstanceUID == image.StudyInstanceUID == overlay.StudyInstanceUID
    assert len({sr.SeriesInstanceUID, image.SeriesInstanceUID, overlay.SeriesInstanceUID}) == 3
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert "not an original DICOM image" in image.DerivationDescription
    assert "non-DICOM" in sr.SeriesDescription
    assert (image.Rows, image.Columns) == (2400, 1935)  # the SR's coordinates are its pixels
    assert overlay.BurnedInAnnotation == "YES"


def test_dicom_input_joins_its_study(ceph_dicom):
    _, files, source = ceph_dicom
    assert "image.dcm" not in files
    sr = pydicom.dcmread(io.BytesIO(files["report.dcm"]))
    overlay = pydicom.dcmread(io.BytesIO(files["overlay.dcm"]))
    for ds in (sr, overlay):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
            assert ds.get(keyword) == source.get(keyword), keyword
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    ref = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID


DCIODVFY = shutil.which("dciodvfy")


@pytest.mark.skipif(
    DCIODVFY is None, reason="dciodvfy missing: apt-get install dicom3tools (scripts/setup.sh)"
)
@pytest.mark.parametrize(
    ("case", "name"),
    [
        ("ceph_png", "report.dcm"),
        ("ceph_png", "overlay.dcm"),
        ("ceph_png", "image.dcm"),
        ("ceph_dicom", "report.dcm"),
        ("ceph_dicom", "overlay.dcm"),
        ("pano_png", "report.dcm"),
    ],
)
def test_dciodvfy_finds_no_error(case, name, request, tmp_path: Path):
    files = request.getfixturevalue(case)[1]
    path = write(tmp_path, name, files[name])
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, "\n".join(errors)
    assert lines, "dciodvfy printed nothing"


@pytest.mark.parametrize("kind", ["ceph", "pano"])
def test_the_fast_sr_writer_writes_what_pydicom_writes(kind: str, monkeypatch: pytest.MonkeyPatch):
    """artifacts.dicom_write encodes the content tree itself; the file must be pydicom's, byte for
    byte, including an element it leaves to pydicom (a name outside ASCII)."""
    import copy

    from artifacts import dicom_sr, dicom_study, dicom_write
    from dentalai.task_json import message_dict
    from tests.reports import samples

    if kind == "ceph":
        data = message_dict(samples.ceph_result())
        data["measurements"][0]["name"] = "Winkel SNA (Grad, °)"
        pixels = samples.ceph_image()
    else:
        data, pixels = samples.pano_result(), samples.pano_image()
    study = dicom_study.study_for(b"", pixels, "png", "t-1", 0.1, ("A", "F"))
    seen: list[tuple[bytes, bytes]] = []
    fast = dicom_write.save

    def both(ds: pydicom.Dataset, keyword: str) -> bytes:
        expected = io.BytesIO()
        copy.deepcopy(ds).save_as(expected, enforce_file_format=True)
        got = fast(ds, keyword)
        seen.append((got, expected.getvalue()))
        return got

    monkeypatch.setattr(dicom_write, "save", both)
    dicom_sr.structured_report(kind, data, study, MODEL_CEPH)
    ((got, expected),) = seen
    assert got == expected


def _findings_of_every_shape(data: dict) -> dict:
    """The sample pano result with findings with and without a tooth and an area in mm2 (each shape
    of group is restamped from its own first group)."""
    base = data["findings"][0]
    extra = []
    for k, (fdi, area) in enumerate([(0, 0.0), (36, 0.0), (0, 9.5), (47, 4.25), (36, 16.0)]):
        kind = ("caries", "periapical")[k % 2]
        finding = {**base, "fdi": fdi, "score": round(0.6 + 0.05 * k, 3), "type": kind}
        finding.pop("areaMm2", None)
        if area:
            finding["areaMm2"] = area
        finding["polygon"] = [[x + 3 * k, y - k] for x, y in base["polygon"]]
        extra.append(finding)
    return {**data, "findings": data["findings"] + extra}


@pytest.mark.parametrize("kind", ["ceph", "pano"])
def test_restamped_groups_are_the_groups_highdicom_builds(kind: str, monkeypatch: pytest.MonkeyPatch):
    """dicom_sr builds the first group of each shape with highdicom and gives the next ones their
    values in place (and the ceph measurements likewise); the file must be the one that building
    every group with highdicom gives. UIDs are drawn from a counter, so both files have the same;
    the creation times (highdicom's clock) are the only other difference and are set equal."""
    import itertools

    from artifacts import dicom_sr, dicom_study
    from dentalai.task_json import message_dict
    from tests.reports import samples

    if kind == "ceph":
        data = message_dict(samples.ceph_result())
        data["measurements"][1].pop("norm", None)  # a measurement without a norm: its own shape
        data["landmarks"][2]["confidence"] = 0.123456789
        pixels = samples.ceph_image()
    else:
        data, pixels = _findings_of_every_shape(samples.pano_result()), samples.pano_image()
    study = dicom_study.study_for(b"", pixels, "png", "t-1", 0.1, ("A", "F"))
    files = []
    for restamp in (True, False):
        counter = itertools.count(1)
        monkeypatch.setattr(hd, "UID", lambda c=counter: f"1.2.826.0.1.3680043.10.511.9.{next(c)}")
        ds = pydicom.dcmread(io.BytesIO(dicom_sr.structured_report(kind, data, study, MODEL_CEPH, restamp)))
        for keyword in ("InstanceCreationTime", "ContentTime"):
            setattr(ds, keyword, "120000")
        for item in ds.ContributingEquipmentSequence:
            if "ContributionDateTime" in item:
                item.ContributionDateTime = "20260101120000"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    restamped, built = files
    assert restamped == built
    content = hd.sr.MeasurementReport.from_sequence(
        hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(io.BytesIO(restamped))).content
    )
    groups = content.get_planar_roi_measurement_groups()
    expected = len(data["landmarks"]) if kind == "ceph" else len(data["teeth"]) + len(data["findings"])
    assert len(groups) == expected


def test_an_empty_result_says_so_in_its_one_group():
    from artifacts import dicom_sr, dicom_study
    from tests.reports import samples

    study = dicom_study.study_for(b"", samples.pano_image(), "png", "t-1", 0.1, ("L", "F"))
    _, content = report(dicom_sr.structured_report("pano", {"teeth": []}, study, MODEL_CEPH))
    (group,) = content.get_image_measurement_groups()
    assert [e.value.meaning for e in group.get_qualitative_evaluations()] == ["No landmarks or teeth found"]
