"""Small DICOM files in several transfer syntaxes, built with pydicom (tests only)."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

NATIVE = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
# Compressed syntaxes whose payload here is garbage: the decoder must answer 11002, not crash.
ENCAPSULATED = [JPEGBaseline8Bit, JPEG2000Lossless, JPEGLSLossless, RLELossless]


def dataset(pixels: np.ndarray, syntax: UID, **attrs: object) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def dicom_bytes(ds: Dataset, syntax: UID) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian,
               enforce_file_format=True)
    return buffer.getvalue()


def native(pixels: np.ndarray, syntax: UID, **attrs: object) -> bytes:
    ds = dataset(pixels, syntax, **attrs)
    data = pixels if syntax.is_little_endian else pixels.byteswap()
    ds.PixelData = data.tobytes()
    return dicom_bytes(ds, syntax)


def encapsulated_garbage(syntax: UID, rows: int = 300, cols: int = 320) -> bytes:
    ds = dataset(np.zeros((rows, cols), np.uint8), syntax)
    ds.PixelData = encapsulate([b"\xff\xd8\x00garbage" * 20])
    ds["PixelData"].VR = "OB"
    return dicom_bytes(ds, ExplicitVRLittleEndian if syntax.is_compressed else syntax)
