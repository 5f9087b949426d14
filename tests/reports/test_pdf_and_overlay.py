"""The PDF report read back with poppler (pdfinfo, pdftotext, pdftoppm) and the overlay PNG."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artifacts import overlay_image
from artifacts.pdf_report import NOTICE
from tests.reports import samples
from tests.reports.conftest import MAX_SIDE, MODEL_PANO, write

POPPLER = all(shutil.which(t) for t in ("pdftotext", "pdftoppm", "pdfinfo"))
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils missing: apt-get install poppler-utils")


def text_of(pdf: Path) -> str:
    # -raw keeps table cells in reading order; whitespace is normalised for phrase checks
    raw = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True)
    return " ".join(raw.stdout.split())


def pages_of(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    line = next(x for x in info.splitlines() if x.startswith("Pages:"))
    size = next(x for x in info.splitlines() if x.startswith("Page size:"))
    assert "A4" in size, size
    return int(line.split()[1])


@needs_poppler
def test_ceph_pdf_lists_everything(ceph_png, tmp_path: Path):
    data, files = ceph_png
    pdf = write(tmp_path, "report.pdf", files["report.pdf"])
    assert pages_of(pdf) in (1, 2)
    text = text_of(pdf)
    for needle in (
        "ceph-task-1",
        "A-17",
        "Zürich Süd",
        "ceph-landmarks 1.1.0 + ceph-landmarks-refine 1.0.0",  # both stages are named
        "0.1 mm (request)",
        " ".join(NOTICE.split()),
    ):
        assert needle in text, needle
    assert "ignored" not in text  # only the scalar metadata fields name the case
    for lm in data["landmarks"]:
        assert f"{lm['id']} {lm['name']}" in text
        assert f"{lm['confidence']:.2f}" in text
    for m in data["measurements"]:
        assert m["name"] in text and m["interpretation"] in text
        assert f"{m['norm']['mean']:.1f} ± {m['norm']['sd']:.1f}" in text
    for c in data["classifications"]:
        assert c["name"] in text and c["label"] in text
    assert f"skeletal {data['summary']['skeletalClass']}, {data['summary']['verticalPattern']}" in text


@needs_poppler
def test_pano_pdf_has_the_tooth_chart_and_findings(pano_png, tmp_path: Path):
    data, files = pano_png
    pdf = write(tmp_path, "report.pdf", files["report.pdf"])
    assert pages_of(pdf) in (1, 2)
    text = text_of(pdf)
    chart = "18 17 16 15 14 13 12 11 21 22 23 24 25 26 27 28"
    assert chart in text and "48 47 46 45 44 43 42 41 31 32 33 34 35 36 37 38" in text
    assert "missing (FDI): 18, 38" in text
    assert "caries 36 0.81 16.0 mm²" in text
    assert "55 54 53" not in text  # no primary teeth in this result: no primary chart
    assert MODEL_PANO["name"] in text and " ".join(NOTICE.split()) in text


@needs_poppler
def test_pdf_pages_render_with_the_overlay(ceph_png, tmp_path: Path):
    """Rendered by pdftoppm: page 1 is A4 and carries the (non-blank, coloured) overlay."""
    pdf = write(tmp_path, "report.pdf", ceph_png[1]["report.pdf"])
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    first = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    h, w, _ = first.shape
    assert abs(h / w - 297 / 210) < 0.01
    middle = first[h // 3 : 2 * h // 3, w // 4 : 3 * w // 4]
    assert middle.std() > 20  # the radiograph, not an empty page
    colour = np.abs(middle[..., 0] - middle[..., 2]) + np.abs(middle[..., 1] - middle[..., 2])
    assert (colour > 80).sum() > 50  # the drawn landmarks and lines


def test_overlay_png_is_at_most_max_side_and_drawn(ceph_png, pano_png):
    for data, files in (ceph_png, pano_png):
        image = Image.open(io.BytesIO(files["overlay.png"]))
        assert image.format == "PNG" and image.mode == "RGB"
        assert max(image.size) == MAX_SIDE
        w, h = data["image"]["width"], data["image"]["height"]
        assert abs(image.size[0] / image.size[1] - w / h) < 0.01
        rgb = np.asarray(image).astype(int)
        assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 80).sum() > 100  # coloured drawing on a gray image


@needs_poppler
def test_primary_teeth_add_the_55_85_chart_and_their_sr_codes(tmp_path: Path):
    """A mixed dentition (the pano result gains 51-85 in another branch): chart rows and SNOMED codes."""
    import highdicom as hd
    import pydicom

    from artifacts import dicom_codes
    from artifacts.make import Source, make_artifacts

    data = samples.pano_result()
    primary = {**data["teeth"][0], "fdi": 55, "number": 55}
    data["teeth"].append(primary)
    files = make_artifacts(Source("pano", data, samples.pano_image(), b"", "png", "mixed-1"), MAX_SIDE)
    text = text_of(write(tmp_path, "report.pdf", files["report.pdf"]))
    assert "55 54 53 52 51 61 62 63 64 65" in text and "85 84 83 82 81 71 72 73 74 75" in text
    sr = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(io.BytesIO(files["report.dcm"])))
    groups = hd.sr.MeasurementReport.from_sequence(sr.content).get_planar_roi_measurement_groups()
    (group,) = [g for g in groups if g.tracking_identifier == "tooth 55"]
    assert group.finding_sites[0].value.value == dicom_codes.tooth(55).value


def test_the_overlay_outlines_findings_in_magenta_where_they_are(pano_png):
    data, files = pano_png
    rgb = np.asarray(Image.open(io.BytesIO(files["overlay.png"]))).astype(int)
    magenta = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] > 200)
    scale = rgb.shape[1] / data["image"]["width"]
    (finding,) = data["findings"]
    x, y, w, h = (round(v * scale) for v in finding["bbox"])
    # The outline (and the legend's "caries"), nowhere else; no finding: no magenta at all.
    assert magenta[y - 2 : y + h + 3, x - 2 : x + w + 3].sum() > 2 * (w + h)
    legend = magenta[: rgb.shape[0] // 3, : rgb.shape[1] // 6].sum()
    assert magenta.sum() == magenta[y - 2 : y + h + 3, x - 2 : x + w + 3].sum() + legend
    bare = overlay_image.render(samples.pano_image(), {**data, "findings": []}, MAX_SIDE)
    assert not ((bare[..., 0] > 200) & (bare[..., 1] < 60) & (bare[..., 2] > 200)).any()


@needs_poppler
def test_pano_pdf_names_the_tooth_of_a_finding_in_universal_numbers(tmp_path: Path):
    from artifacts.make import Source, make_artifacts
    from pipelines.pano.numbering import fdi_to_universal

    data = samples.pano_result()
    data["numbering"] = "UNIVERSAL"
    for item in data["teeth"] + data["findings"]:
        item["number"] = fdi_to_universal(item["fdi"])
    data["missingTeeth"] = [fdi_to_universal(f) for f in data["missingTeeth"]]
    files = make_artifacts(Source("pano", data, samples.pano_image(), b"", "png", "uni-1"), MAX_SIDE)
    text = text_of(write(tmp_path, "report.pdf", files["report.pdf"]))
    assert "tooth (Universal, FDI)" in text and "caries #19 (36) 0.81 16.0 mm²" in text


@needs_poppler
def test_pano_pdf_and_overlay_say_which_finding_types_were_not_assessed(tmp_path: Path):
    from artifacts.make import Source, make_artifacts

    data = samples.pano_result()
    data["findings"] = []
    data["findingsAssessed"] = ["periapical"]
    data["findingsNotAssessed"] = [{"type": "caries", "reason": "film 900 px wide: too narrow"}]
    for tooth in data["teeth"]:
        tooth["findings"] = []
    files = make_artifacts(Source("pano", data, samples.pano_image(), b"", "png", "na-1"), MAX_SIDE)
    text = text_of(write(tmp_path, "report.pdf", files["report.pdf"]))
    assert "caries: not assessed: film 900 px wide: too narrow" in text
    assert "periapical: none found" in text and "No findings reported" not in text
    # The overlay's legend gets an entry for the type not looked for: the same result without it
    # differs only there, under the quadrants' entries in the top-left corner.
    rgb = np.asarray(Image.open(io.BytesIO(files["overlay.png"])).convert("RGB"))
    data["findingsNotAssessed"] = []
    plain = overlay_image.render(samples.pano_image(), data, MAX_SIDE)
    ys, xs = np.nonzero((rgb != plain).any(axis=2))
    assert len(ys) > 50 and ys.max() < rgb.shape[0] // 4 and xs.max() < rgb.shape[1] // 4


def test_overlay_png_decodes_to_the_same_pixels():
    """The PNG writer is the project's own (filter + libdeflate): lossless in two decoders, any size."""
    import cv2

    from artifacts import overlay_image

    rng = np.random.default_rng(7)
    for shape in ((1, 1, 3), (1, 37, 3), (29, 1, 3), (301, 517, 3)):
        rgb = rng.integers(0, 256, shape, dtype=np.uint8)
        data = overlay_image.png(rgb)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), rgb)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(bgr[..., ::-1], rgb)
