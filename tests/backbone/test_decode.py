"""Image decoding: formats, colour to gray, DICOM spacing and MONOCHROME1, bombs refused first."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dentalai.errors import DentalAIError
from grpc_server.decode import decode_image


def _encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
def test_pillow_formats_decode_to_gray(fmt: str) -> None:
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    image = decode_image(_encode(rgb, fmt), max_pixels=10_000)
    assert image.pixels.shape == (40, 60) and image.pixels.dtype == np.uint8
    assert image.source_format == fmt.lower() and image.pixel_spacing_mm is None


def test_16_bit_png_stays_16_bit() -> None:
    array = (np.arange(50 * 70, dtype=np.uint16).reshape(50, 70) * 13)
    image = decode_image(_encode(array, "PNG"), max_pixels=10_000)
    assert image.pixels.dtype == np.uint16 and np.array_equal(image.pixels, array)


def test_bomb_is_refused_from_the_header() -> None:
    data = _encode(np.zeros((200, 200), dtype=np.uint8), "PNG")
    with pytest.raises(DentalAIError) as err:
        decode_image(data, max_pixels=200 * 199)
    assert err.value.code == 11002


@pytest.mark.parametrize("data", [b"", b"GIF89a" + b"\0" * 64, b"\x89PNG\r\n\x1a\n broken", b"%PDF-1.4"])
def test_garbage_and_unsupported_formats_are_11002(data: bytes) -> None:
    with pytest.raises(DentalAIError) as err:
        decode_image(data, max_pixels=10_000)
    assert err.value.code == 11002


def _dicom(array: np.ndarray, photometric: str = "MONOCHROME2", spacing: list[float] | None = None) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = array.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if spacing:
        ds.ImagerPixelSpacing = spacing
    ds.PixelData = array.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_spacing_and_monochrome1() -> None:
    array = np.full((30, 40), 1000, dtype=np.uint16)
    array[0, 0] = 0
    image = decode_image(_dicom(array, "MONOCHROME1", [0.1, 0.1]), max_pixels=10_000)
    assert image.source_format == "dicom" and image.pixel_spacing_mm == pytest.approx(0.1)
    assert image.pixels[0, 0] > image.pixels[1, 1]  # inverted: bright = dense
    assert decode_image(_dicom(array, spacing=[0.1, 0.2]), max_pixels=10_000).pixel_spacing_mm is None
    with pytest.raises(DentalAIError):
        decode_image(_dicom(array), max_pixels=100)
