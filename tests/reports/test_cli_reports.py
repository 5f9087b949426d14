"""`dentalai analyze --report pdf,dcm` writes the PDF and the DICOM files beside the JSON."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from dentalai import analyze_cmd
from tests.reports.samples import DATA

IMAGE = DATA / "ceph" / "isbi2015_640x800" / "images" / "151.png"
MODEL = Path(__file__).resolve().parents[2] / "models" / "ceph-landmarks" / "manifest.json"


@pytest.mark.skipif(not IMAGE.exists(), reason="../shared/data (ISBI ceph images) is absent")
@pytest.mark.skipif(not MODEL.exists(), reason="no ceph model in models/")
def test_report_files_beside_the_json(tmp_path: Path):
    out = tmp_path / "o"
    argv = [str(IMAGE), "--type", "ceph", "--out", str(out), "--pixel-spacing", "0.3", "--report", "pdf,dcm",
            "--no-progress"]  # fmt: skip
    assert analyze_cmd.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "151.dcm", "151.image.dcm", "151.json", "151.overlay.dcm", "151.pdf", "151.png",
    ]  # fmt: skip
    data = json.loads((out / "151.json").read_text())
    sr = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(out / "151.dcm"))
    groups = hd.sr.MeasurementReport.from_sequence(sr.content).get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == [f"landmark {lm['id']}" for lm in data["landmarks"]]
    text = subprocess.run(["pdftotext", str(out / "151.pdf"), "-"], capture_output=True, text=True).stdout
    manifest = json.loads(MODEL.read_text())
    assert manifest["name"] in text and "151" in text
    image = pydicom.dcmread(io.BytesIO((out / "151.image.dcm").read_bytes()))
    assert image.StudyInstanceUID == sr.StudyInstanceUID


def test_report_takes_known_formats_only(tmp_path: Path):
    with pytest.raises(SystemExit) as exit_:
        analyze_cmd.main([str(tmp_path), "--type", "ceph", "--report", "pdf,tiff"])
    assert exit_.value.code == 2
