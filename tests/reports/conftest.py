"""Artifacts of the sample results, made once per session (highdicom and reportlab take a while
on a busy 2-core machine)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from artifacts.make import Source, make_artifacts
from dentalai.task_json import message_dict
from tests.reports import samples
from tests.security.dicom_samples import native

MAX_SIDE = 1600
MODEL_CEPH = {
    "name": "ceph-landmarks",
    "version": "1.1.0",
    "components": [{"name": "ceph-landmarks-refine", "version": "1.0.0"}],
}
MODEL_PANO = {"name": "pano-teeth", "version": "1.0.0"}
METADATA = {"patientRef": "A-17", "clinic": "Zürich Süd", "nested": {"ignored": True}}
PDF_KEYS = ("patientRef", "clinic", "nested")  # the client's allow-list (a non-scalar is never printed)


def dicom_input(pixels: np.ndarray) -> bytes:
    """A DICOM input with patient and study modules, as a PACS would send (tests/security's maker)."""
    return native(
        np.ascontiguousarray(pixels, dtype=np.uint8), ExplicitVRLittleEndian,
        StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
        PatientName="Doe^Jane", PatientID="P-0042", PatientBirthDate="19900101", PatientSex="F",
        StudyDate="20261201", StudyTime="101500", StudyID="S1", AccessionNumber="ACC-9",
        ReferringPhysicianName="Who^Doctor", PixelSpacing=[0.1, 0.1],
    )  # fmt: skip


def _ceph(raw: bytes, fmt: str, deidentify: bool = True) -> tuple[dict, dict[str, bytes]]:
    data = message_dict(samples.ceph_result())
    src = Source(
        "ceph", data, samples.ceph_image(), raw, fmt, "ceph-task-1", METADATA, MODEL_CEPH,
        deidentify=deidentify, pdf_metadata_keys=PDF_KEYS,
    )  # fmt: skip
    return data, make_artifacts(src, MAX_SIDE)


@pytest.fixture(scope="session")
def ceph_png() -> tuple[dict, dict[str, bytes]]:
    return _ceph(b"", "png")


@pytest.fixture(scope="session")
def ceph_dicom() -> tuple[dict, dict[str, bytes], Dataset]:
    """A DICOM input of a client that keeps identifiers (deidentify off): the files join its study."""
    raw = dicom_input(samples.ceph_image())
    data, files = _ceph(raw, "dicom", deidentify=False)
    return data, files, pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)


@pytest.fixture(scope="session")
def pano_png() -> tuple[dict, dict[str, bytes]]:
    data = samples.pano_result()
    src = Source(
        "pano", data, samples.pano_image(), b"", "jpeg", "pano-task-1", METADATA, MODEL_PANO,
        pdf_metadata_keys=PDF_KEYS,
    )  # fmt: skip
    return data, make_artifacts(src, MAX_SIDE)


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path
