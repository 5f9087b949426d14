"""What the overlay, the PDF, the DICOM SR and the UI show of an edentulous film and of a tooth whose
number is to be checked (results made here; the PDF read back with poppler's pdftotext)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from artifacts.make import Source, make_artifacts
from dentalai import overlay
from dentalai.task_json import message_dict
from dentalai.v1 import results_pb2
from pipelines.pano.numbering import PERMANENT_FDI
from ui import views

SIZE = (1600, 800)
MODEL = {"name": "pano-teeth", "version": "test"}


def film() -> np.ndarray:
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    return (90 + 60 * np.sin(x / 150.0) * np.cos(y / 100.0)).astype(np.uint8)


def edentulous() -> dict:
    """What the pipeline answers for a film with no teeth: every tooth missing, both jaws edentulous."""
    result = results_pb2.PanoResult(
        image=results_pb2.PanoImage(width=SIZE[0], height=SIZE[1]), numbering=results_pb2.FDI
    )
    result.missing_teeth.extend(PERMANENT_FDI)
    result.summary.edentulous_jaws.extend(["upper", "lower"])
    return message_dict(result)


def lower_only(check: bool = True) -> dict:
    """Four lower teeth, the upper jaw edentulous; 42 with an uncertain number."""
    result = results_pb2.PanoResult(
        image=results_pb2.PanoImage(width=SIZE[0], height=SIZE[1]), numbering=results_pb2.FDI
    )
    for k, fdi in enumerate((31, 32, 41, 42)):
        x = 700 + 60 * k
        tooth = result.teeth.add(
            fdi=fdi,
            number=fdi,
            score=0.35 if fdi == 42 else 0.97,
            raw_score=0.93,
            check_number=check and fdi == 42,
            bbox=[x, 450, 40, 150],
            area_px=6000,
        )
        tooth.polygon.extend([[x, 450], [x + 40, 450], [x + 40, 600], [x, 600]])
    result.missing_teeth.extend(f for f in PERMANENT_FDI if f not in (31, 32, 41, 42))
    result.summary.tooth_count = 4
    result.summary.edentulous_jaws.append("upper")
    return message_dict(result)


def test_the_json_says_it() -> None:
    data = edentulous()
    assert data["summary"] == {"toothCount": 0, "edentulousJaws": ["upper", "lower"]}
    assert data["teeth"] == [] and len(data["missingTeeth"]) == 32
    assert overlay.edentulous_text(data) == "edentulous: upper and lower jaw (no teeth found)"
    assert overlay.edentulous_text(lower_only()) == "edentulous: upper jaw"
    assert overlay.check_number_teeth(lower_only()) == ["42"]


def test_the_overlay_draws_the_legend_and_the_flag() -> None:
    plain = overlay.render(film(), lower_only(check=False))
    flagged = overlay.render(film(), lower_only())
    assert overlay.result_kind(edentulous()) == "pano"
    changed = np.any(plain != flagged, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 200  # the "?" label of 42 and the legend line
    assert ys.min() < 200  # ... the legend is at the top left
    empty = overlay.render(film(), edentulous())
    assert np.any(empty != overlay.to_rgb(film()))  # the legend says "edentulous" on an empty film


def test_the_ui_says_it() -> None:
    _, rows = views.class_rows(edentulous())
    assert ["edentulous jaws", "upper and lower jaw (no teeth found)"] in rows
    assert ["check number", "none"] in rows
    cols, teeth = views.measurement_rows(lower_only())
    flags = {t[0]: t[cols.index("check")] for t in teeth}
    assert flags == {"31": "", "32": "", "41": "", "42": "check number"}
    assert ["check number", "42"] in views.class_rows(lower_only())[1]


def files(data: dict) -> dict[str, bytes]:
    return make_artifacts(Source("pano", data, film(), b"", "png", "pano-dentition", {}, MODEL), 1600)


def test_the_dicom_sr_codes_the_edentulous_jaws_and_the_tooth_to_check() -> None:
    sr = pydicom.dcmread(io.BytesIO(files(lower_only())["report.dcm"]))
    found: list[tuple[str, str]] = []

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if "ConceptNameCodeSequence" in item and "ConceptCodeSequence" in item:
                found.append(
                    (item.ConceptNameCodeSequence[0].CodeMeaning, item.ConceptCodeSequence[0].CodeMeaning)
                )
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    assert ("Edentulous jaw", "Maxilla") in found
    assert ("Edentulous jaw", "Mandible") not in found
    checked = [value for name, value in found if name == "Tooth number to be checked"]
    assert len(checked) == 1 and "mandibular right lateral" in checked[0].lower()
    assert sum(name == "Missing tooth" for name, _ in found) == 28
    both = pydicom.dcmread(io.BytesIO(files(edentulous())["report.dcm"]))
    found.clear()
    walk(both.ContentSequence)
    assert {v for n, v in found if n == "Edentulous jaw"} == {"Maxilla", "Mandible"}


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler's pdftotext is not installed")
def test_the_pdf_says_it(tmp_path: Path) -> None:
    def text(data: dict) -> str:
        path = tmp_path / "report.pdf"
        path.write_bytes(files(data)["report.pdf"])
        return subprocess.run(
            ["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout

    empty = text(edentulous())
    assert "Edentulous: upper and lower jaw (no teeth found)" in empty
    assert "Teeth found: 0" in empty
    some = text(lower_only())
    assert "Edentulous: upper jaw" in some
    assert "Check number: 42" in some and "check no." in some and "check number" in some
