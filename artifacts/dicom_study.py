"""The study the DICOM artifacts belong to, and the Secondary Captures made in it.

A DICOM input: its study (Study Instance UID, patient and study modules copied from its header)
and the input itself as the image the SR refers to. Any other input: a new study, whose referenced
image is a Secondary Capture of the input made here (its descriptions say it was converted), so
that the SR's pixel coordinates point at an instance a PACS can show.

De-identified (`artifacts.deidentify`): every input is referenced through a Secondary Capture made
here, in a study whose UIDs replace the input's; nothing else of a DICOM input's header is copied.

The capture keeps the input's pixels losslessly and in proportion to the upload (the artifacts are
kept in Redis as long as the task): a baseline JPEG upload as its own stream
(`artifacts.jpeg_stream`), anything else JPEG-LS lossless (CharLS through pydicom: 2.5-4x smaller
than the uncompressed copy that this was before, at about 80-90 ms for a 2400 x 1935 ceph).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from artifacts import jpeg_stream
from artifacts.deidentify import Pseudonyms, mark

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
    from_dicom: bool  # the input was DICOM
    input_capture: bytes | None  # the Secondary Capture the SR refers to when made here, else None
    pseudonyms: Pseudonyms | None = None  # set when the files are de-identified

    @property
    def uid(self) -> str:
        return str(self.source.StudyInstanceUID)

    def new_uid(self, role: str) -> str:
        """The UID of a series or instance made here: stable for the task when de-identified."""
        return self.pseudonyms.new(role) if self.pseudonyms else hd.UID()


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
    pseudonyms: Pseudonyms | None = None,
) -> Study:
    """The study of the artifacts; `pseudonyms`: de-identified (module docstring)."""
    header = dicom_header(raw)
    if header is not None and pseudonyms is None:
        return Study(source=header, from_dicom=True, input_capture=None)
    jpeg = jpeg_stream.baseline(raw, pixels.shape) if header is None else None
    capture = capture_of_input(pixels, source_format, case_id, spacing, orientation, pseudonyms, header, jpeg)
    data = _to_bytes(capture)
    return Study(
        source=pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True),
        from_dicom=header is not None,
        input_capture=data,
        pseudonyms=pseudonyms,
    )


def capture_of_input(
    pixels: np.ndarray,
    source_format: str,
    case_id: str,
    spacing: float | None,
    orientation: tuple[str, str],
    pseudonyms: Pseudonyms | None = None,
    header: Dataset | None = None,
    jpeg: jpeg_stream.Stream | None = None,
) -> hd.sc.SCImage:
    """The input as a Secondary Capture: in a new study, or de-identified (`pseudonyms`) in the
    study that replaces a DICOM input's (`header`), under the UIDs that replace the input's. Its
    pixels: `jpeg`, the upload's baseline JPEG stream, when given, else `pixels` as JPEG-LS
    lossless."""
    bits = 8 if pixels.dtype == np.uint8 else 16
    if header is None:
        what = f"{source_format.upper() or 'non-DICOM'} upload"
        derived = f"Secondary Capture of a {what} made by dentalai; not an original DICOM image"
    else:
        what = "DICOM input, de-identified"
        derived = "De-identified Secondary Capture of a DICOM input made by dentalai; not the original image"
    if pseudonyms is None:
        uids = (hd.UID(), hd.UID(), hd.UID())
        patient = {"patient_id": case_id[:64], "patient_name": "", "study_id": case_id[:16]}
        when = {"study_date": _today(), "study_time": _now()}
    else:
        roles = {"StudyInstanceUID": "study", "SeriesInstanceUID": "input-series", "SOPInstanceUID": "input"}
        known = header if header is not None else Dataset()
        uids = tuple(
            pseudonyms.replace(str(known[k].value)) if known.get(k) else pseudonyms.new(role)
            for k, role in roles.items()
        )
        patient, when = {}, {}  # deidentify.mark gives the patient, study and dates their values
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(pixels),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        coordinate_system="PATIENT",
        patient_orientation=orientation,
        study_instance_uid=uids[0],
        series_instance_uid=uids[1],
        series_number=1,
        sop_instance_uid=uids[2],
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_birth_date="",
        patient_sex="",
        accession_number="",
        referring_physician_name="",
        pixel_spacing=(spacing, spacing) if spacing else None,
        transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian if jpeg else pydicom.uid.JPEGLSLossless,
        **patient,
        **when,
    )
    if jpeg:
        _keep_stream(sc, jpeg)
    sc.SeriesDescription = f"Input image ({what})"[:64]
    sc.DerivationDescription = derived[:1024]
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = ""  # type 2C; empty: jaws and skull are not paired structures
    if pseudonyms is not None:
        mark(sc, pseudonyms)
    return sc


def capture_of_overlay(
    rgb: np.ndarray, study: Study, spacing: float | None, orientation: tuple[str, str], jpeg: bytes
) -> bytes:
    """The overlay as a Secondary Capture in the study: `jpeg`, the PDF's JPEG of it (a colour
    picture for viewing, a tenth of the uncompressed size), kept as it is."""
    src = study.source
    stream = jpeg_stream.baseline(jpeg, rgb.shape[:2])
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(rgb),
        photometric_interpretation="RGB" if stream else "YBR_FULL_422",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=orientation,
        study_instance_uid=study.uid,
        series_instance_uid=study.new_uid("overlay-series"),
        series_number=901,
        sop_instance_uid=study.new_uid("overlay"),
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
        transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian if stream else pydicom.uid.JPEGBaseline8Bit,
    )
    sc.SeriesDescription = "dentalai overlay (machine-made, to be reviewed)"
    sc.BurnedInAnnotation = "YES"
    sc.Laterality = ""
    if stream:
        _keep_stream(sc, stream)
    else:  # highdicom encoded it (never seen: the PDF's JPEG is baseline)
        sc.LossyImageCompression = "01"
        sc.LossyImageCompressionMethod = "ISO_10918_1"
    if study.pseudonyms is not None:
        mark(sc, study.pseudonyms)
    return _to_bytes(sc)


def _keep_stream(sc: Dataset, stream: jpeg_stream.Stream) -> None:
    """A capture's pixel data becomes a baseline JPEG stream as it is: lossy, and said so (PS3.3
    C.7.6.1.1.5), with the ratio to the uncompressed pixels."""
    sc.PixelData = encapsulate([stream.data])
    sc["PixelData"].VR = "OB"
    sc.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    sc.SamplesPerPixel = stream.samples
    sc.PhotometricInterpretation = stream.photometric
    if stream.samples == 3:
        sc.PlanarConfiguration = 0
    elif "PlanarConfiguration" in sc:
        del sc.PlanarConfiguration
    sc.LossyImageCompression = "01"
    sc.LossyImageCompressionMethod = "ISO_10918_1"
    sc.LossyImageCompressionRatio = f"{sc.Rows * sc.Columns * stream.samples / len(stream.data):.2f}"


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
