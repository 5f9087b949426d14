"""The study the DICOM artifacts belong to, and the Secondary Captures made in it.

A DICOM input: its study (Study Instance UID, patient and study modules copied from its header)
and the input itself as the image the SR refers to. Any other input: a new study, whose referenced
image is a Secondary Capture of the input made here (its descriptions say it was converted), so
that the SR's pixel coordinates point at an instance a PACS can show.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

MANUFACTURER = "dentalai"
# highdicom logs every module it copies at INFO (a dozen lines per file) into the worker's log.
logging.getLogger("highdicom").setLevel(logging.WARNING)
# Patient and study attributes the SR and the captures copy from a DICOM source (highdicom reads
# all of them from the evidence, so absent ones are set empty: all are type 2 there).
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


@dataclass
class Study:
    source: Dataset  # header of the referenced image (the DICOM input or the input's capture)
    from_dicom: bool
    input_capture: bytes | None  # the Secondary Capture of a non-DICOM input, else None

    @property
    def uid(self) -> str:
        return str(self.source.StudyInstanceUID)


def dicom_header(raw: bytes) -> Dataset | None:
    """The header of a DICOM input (no pixels read), or None for other formats."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        return None
    ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
    for keyword in PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")
    if not ds.StudyInstanceUID:
        ds.StudyInstanceUID = hd.UID()
    return ds


def study_for(
    raw: bytes,
    pixels: np.ndarray,
    source_format: str,
    case_id: str,
    spacing: float | None,
    orientation: tuple[str, str],
) -> Study:
    header = dicom_header(raw)
    if header is not None:
        return Study(source=header, from_dicom=True, input_capture=None)
    capture = capture_of_input(pixels, source_format, case_id, spacing, orientation)
    data = _to_bytes(capture)
    return Study(
        source=pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True),
        from_dicom=False,
        input_capture=data,
    )


def capture_of_input(
    pixels: np.ndarray, source_format: str, case_id: str, spacing: float | None, orientation: tuple[str, str]
) -> hd.sc.SCImage:
    """A new study with the input as a Secondary Capture (uncompressed: a lossless copy, and
    RLE in pure Python would cost seconds)."""
    bits = 8 if pixels.dtype == np.uint8 else 16
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(pixels),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        coordinate_system="PATIENT",
        patient_orientation=orientation,
        study_instance_uid=hd.UID(),
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id=case_id[:64],
        patient_name="",
        patient_birth_date="",
        patient_sex="",
        accession_number="",
        study_id=case_id[:16],
        study_date=_today(),
        study_time=_now(),
        referring_physician_name="",
        pixel_spacing=(spacing, spacing) if spacing else None,
    )
    sc.SeriesDescription = f"Input image ({source_format.upper() or 'non-DICOM'} upload)"
    sc.DerivationDescription = (
        f"Secondary Capture of a {source_format.upper() or 'non-DICOM'} upload made by dentalai; "
        "not an original DICOM image"
    )[:1024]
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = ""  # type 2C; empty: jaws and skull are not paired structures
    return sc


def capture_of_overlay(
    rgb: np.ndarray, study: Study, spacing: float | None, orientation: tuple[str, str]
) -> bytes:
    """The overlay as a Secondary Capture in the study (JPEG baseline: a colour picture for
    viewing, a tenth of the uncompressed size)."""
    src = study.source
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(rgb),
        photometric_interpretation="YBR_FULL_422",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=orientation,
        study_instance_uid=study.uid,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id=str(src.PatientID),
        patient_name=src.PatientName,
        patient_birth_date=str(src.PatientBirthDate),
        patient_sex=str(src.PatientSex) or None,
        accession_number=str(src.AccessionNumber),
        study_id=str(src.StudyID),
        study_date=str(src.StudyDate) or None,
        study_time=str(src.StudyTime) or None,
        referring_physician_name=src.ReferringPhysicianName,
        pixel_spacing=(spacing, spacing) if spacing else None,
        transfer_syntax_uid=pydicom.uid.JPEGBaseline8Bit,
    )
    sc.SeriesDescription = "dentalai overlay (machine-made, to be reviewed)"
    sc.BurnedInAnnotation = "YES"
    sc.Laterality = ""
    sc.LossyImageCompression = "01"
    sc.LossyImageCompressionMethod = "ISO_10918_1"
    return _to_bytes(sc)


def _to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _today() -> str:
    import datetime

    return datetime.date.today().strftime("%Y%m%d")


def _now() -> str:
    import datetime

    return datetime.datetime.now().strftime("%H%M%S")
