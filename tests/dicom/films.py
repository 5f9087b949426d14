"""DICOM radiographs for the DICOM node's tests, built with pydicom from the films in
../shared/data (tests/real_films.py) or from generated pixels, tagged as real devices tag them:

- a panoramic film: Modality PX (Panoramic X-Ray), Digital X-Ray Image Storage - For Presentation;
- a lateral cephalogram: Modality DX, BodyPartExamined SKULL, ViewPosition LL, PixelSpacing.

`instance(pixels, **tags)` makes a Dataset (patient, study, series and image modules, 8-bit
MONOCHROME2); `encode(ds, syntax)` the DICOM file in that transfer syntax (native, deflated, RLE,
JPEG-LS, JPEG baseline); `pano_film()`, `ceph_film()` the real films.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from tests import real_films

DX_PRESENTATION = str(DigitalXRayImageStorageForPresentation)
EXPLICIT = str(ExplicitVRLittleEndian)
# ISBI 2015 full resolution (1935 x 2400 at 0.1 mm): 4.6 MB of 8-bit pixels, the size a ceph unit
# sends.
CEPH_FULLRES = real_films.DATA / "ceph" / "isbi2015_fullres" / "images" / "100.png"


def instance(pixels: np.ndarray, **tags: Any) -> Dataset:
    """An 8-bit MONOCHROME2 Digital X-Ray for Presentation with the modules a PACS files by;
    `tags` add or replace any (None removes one)."""
    ds = Dataset()
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Patient"
    ds.PatientID = "DCM-0001"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = "20261207"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-1"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = "DX"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    for key, value in tags.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def encode(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """The DICOM file (preamble, File Meta Information, data set) in `syntax`."""
    ds = ds.copy()
    syntax = UID(syntax)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what the pixels are before compress()
    if syntax == JPEGBaseline8Bit:  # pydicom has no JPEG encoder: Pillow's, encapsulated
        pixels = np.frombuffer(ds.PixelData, np.uint8).reshape(ds.Rows, ds.Columns)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=95)
        ds.PixelData = encapsulate([out.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    elif syntax.is_compressed:
        ds.compress(syntax, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    implicit = syntax == ImplicitVRLittleEndian
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


def gray(path: Any) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def pano_film(**tags: Any) -> Dataset:
    """Tufts film 72 (1615 x 840) as a panoramic unit sends it."""
    real_films.require(real_films.PANO_FILM)
    tags = {"Modality": "PX", "BodyPartExamined": "JAW", "SeriesDescription": "PANORAMIC", **tags}
    return instance(gray(real_films.PANO_FILM), **tags)


def ceph_film(**tags: Any) -> Dataset:
    """ISBI image 100 at full resolution (1935 x 2400, 0.1 mm) as a ceph unit sends it: 4.6 MB."""
    real_films.require(CEPH_FULLRES)
    tags = {
        "Modality": "DX", "BodyPartExamined": "SKULL", "ViewPosition": "LL", "SeriesDescription": "LAT CEPH",
        "PixelSpacing": [0.1, 0.1], "ImagerPixelSpacing": [0.1, 0.1], **tags,
    }  # fmt: skip
    return instance(gray(CEPH_FULLRES), **tags)

