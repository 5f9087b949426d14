"""`dentalai analyze --report pdf,dcm`: the artifacts of a result written beside its JSON, made by
the same builders as the worker's (artifacts/), from the image file on this machine:
`<stem>.pdf`, `<stem>.dcm` (SR), `<stem>.overlay.dcm`, and `<stem>.image.dcm` for a non-DICOM input
(the capture the SR refers to). `png` is accepted too; the overlay PNG is always written."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from google.protobuf.message import Message

from artifacts.kinds import IMAGE_DCM, OPTIONS, OVERLAY_DCM, REPORT_DCM, REPORT_PDF
from dentalai.task_json import message_dict

SUFFIX = {
    REPORT_PDF.name: ".pdf",
    REPORT_DCM.name: ".dcm",
    OVERLAY_DCM.name: ".overlay.dcm",
    IMAGE_DCM.name: ".image.dcm",
}
MAX_SIDE = 1600  # artifacts.max_side's default: the CLI writes what the service would


def parse_formats(text: str) -> tuple[str, ...]:
    """`--report` value: comma-separated png, pdf, dcm."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in OPTIONS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"--report takes a comma-separated list of {', '.join(OPTIONS)}")
    return formats


def write_reports(
    out: Path,
    path: Path,
    kind: str,
    result: Message,
    pixels: np.ndarray,
    formats: tuple[str, ...],
    model: Message | None,
) -> None:
    from artifacts.make import Source, make_artifacts  # reportlab and highdicom only when asked for

    raw = path.read_bytes()
    source = Source(
        kind=kind,
        data=message_dict(result),
        pixels=pixels,
        raw=raw,
        source_format=path.suffix.lstrip(".").lower(),
        task_id=path.stem,
        model=message_dict(model) if model is not None else {},
    )
    for name, data in make_artifacts(source, MAX_SIDE, formats).items():
        if name in SUFFIX:
            (out / f"{path.stem}{SUFFIX[name]}").write_bytes(data)
