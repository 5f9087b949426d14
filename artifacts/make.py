"""All artifacts of one result in one call: what the worker runs after a result and the CLI for
`--report`. Returns file name (artifacts.kinds) -> bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from artifacts import dicom_sr, dicom_study, kinds, overlay_image, pdf_report
from artifacts.deidentify import Pseudonyms
from pipelines.base_pipeline import StageTimer


@dataclass(frozen=True)
class Source:
    """What the artifacts are made from: the result and the input it came from."""

    kind: str  # "ceph" or "pano"
    data: Mapping[str, Any]  # result as proto3 JSON (CephResult / PanoResult)
    pixels: np.ndarray  # the decoded input (gray, uint8/uint16)
    raw: bytes  # the input file (a DICOM header is read from it)
    source_format: str  # "png", "jpeg", "dicom", ...
    task_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)  # ModelInfo as proto3 JSON
    finished_at: datetime | None = None
    dicom_spacing_mm: float | None = None  # from the input's DICOM header, for pano captures
    # Patient data policy of the task (grpc_server.artifact_step.patient_data_policy): identifiers
    # out of the DICOM files (artifacts.deidentify); the metadata keys the PDF may print.
    deidentify: bool = True
    pdf_metadata_keys: tuple[str, ...] = ()
    owner: str = ""  # the client the task belongs to: de-identified UIDs are its task's own


def orientation(kind: str, data: Mapping[str, Any]) -> tuple[str, str]:
    """DICOM Patient Orientation of the image's rows and columns. A lateral ceph faces right when
    N is right of S (columns run anterior); a pano shows the patient's right on the left."""
    if kind == "pano":
        return ("L", "F")
    points = {lm.get("id"): lm for lm in data.get("landmarks") or []}
    if "S" in points and "N" in points and float(points["N"]["x"]) < float(points["S"]["x"]):
        return ("P", "F")
    return ("A", "F")


def make_artifacts(
    src: Source, max_side: int, wanted: tuple[str, ...] = kinds.OPTIONS, timer: StageTimer | None = None
) -> dict[str, bytes]:
    """overlay.png, report.pdf, report.dcm + overlay.dcm (+ image.dcm for a non-DICOM input, and
    for any input when de-identified); `wanted` (options values) limits the set, for the CLI.
    `timer` gets one stage per step."""
    timer = timer or StageTimer()
    out: dict[str, bytes] = {}
    with timer.stage("overlay"):
        rgb = overlay_image.render(src.pixels, src.data, max_side)
    if "png" in wanted:
        with timer.stage("png"):
            out[kinds.OVERLAY_PNG.name] = overlay_image.png(rgb)
    jpeg = b""  # one JPEG of the overlay, for the PDF page and kept as it is in overlay.dcm
    if "pdf" in wanted or "dcm" in wanted:
        with timer.stage("jpeg"):
            jpeg = overlay_image.jpeg(rgb)
    if "pdf" in wanted:
        with timer.stage("pdf"):
            out[kinds.REPORT_PDF.name] = pdf_report.build_pdf(
                src.kind,
                src.data,
                jpeg,
                (rgb.shape[1], rgb.shape[0]),
                src.task_id,
                src.metadata,
                src.model,
                src.finished_at,
                src.pdf_metadata_keys,
            )
    if "dcm" in wanted:
        spacing = (src.data.get("image") or {}).get("pixelSpacingMm") or src.dicom_spacing_mm
        facing = orientation(src.kind, src.data)
        with timer.stage("study"):
            pseudonyms = Pseudonyms.for_task(src.owner, src.task_id, src.raw) if src.deidentify else None
            study = dicom_study.study_for(
                src.raw, src.pixels, src.source_format, src.task_id, spacing, facing, pseudonyms
            )
        with timer.stage("sr"):
            out[kinds.REPORT_DCM.name] = dicom_sr.structured_report(src.kind, src.data, study, src.model)
        with timer.stage("overlay_sc"):
            overlay_spacing = spacing * src.pixels.shape[1] / rgb.shape[1] if spacing else None
            out[kinds.OVERLAY_DCM.name] = dicom_study.capture_of_overlay(
                rgb, study, overlay_spacing, facing, jpeg
            )
        if study.input_capture is not None:
            out[kinds.IMAGE_DCM.name] = study.input_capture
    return out


def warm_up() -> None:
    """Make the artifacts of a tiny result once: imports, font registration and highdicom's first
    calls cost about a second, which the worker pays at start instead of on its first task."""
    data = {
        "image": {"width": 64, "height": 64, "pixelSpacingMm": 0.1, "spacingSource": "default"},
        "landmarks": [{"id": "S", "name": "sella", "x": 10.0, "y": 10.0, "confidence": 0.9}],
    }
    make_artifacts(Source("ceph", data, np.zeros((64, 64), np.uint8), b"", "png", "warm-up"), 256)
