"""Image bytes -> DecodedImage (2-D gray, uint8 or uint16), or DentalAIError 11002.

PNG, JPEG, TIFF and BMP through Pillow, DICOM through pydicom. The pixel count is read from the
header and checked BEFORE any pixel is decoded, so decompression bombs cost nothing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from dentalai.errors import DentalAIError, ErrorCode
from pipelines.base_pipeline import DecodedImage

PILLOW_FORMATS = {"PNG", "JPEG", "TIFF", "BMP"}
Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels) applies, with our own error code


def undecodable(message: str) -> DentalAIError:
    return DentalAIError(ErrorCode.IMAGE_DECODE_FAILED, message)


def is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    if is_dicom(data):
        return _decode_dicom(data, max_pixels)
    return _decode_pillow(data, max_pixels)


def _check_pixels(width: int, height: int, frames: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise undecodable("image has no pixels")
    if width * height * max(frames, 1) > max_pixels:
        raise undecodable(f"image of {width}x{height} pixels is larger than the limit of {max_pixels} pixels")


def _decode_pillow(data: bytes, max_pixels: int) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Exception:
        raise undecodable("not a supported image (PNG, JPEG, TIFF, BMP or DICOM)") from None
    if image.format not in PILLOW_FORMATS:
        raise undecodable(f"unsupported image format {image.format}; use PNG, JPEG, TIFF, BMP or DICOM")
    _check_pixels(image.width, image.height, 1, max_pixels)
    try:
        image.load()
        pixels = _to_gray(image)
    except DentalAIError:
        raise
    except Exception as exc:
        raise undecodable(f"{image.format} image could not be decoded ({type(exc).__name__})") from None
    return DecodedImage(pixels=pixels, pixel_spacing_mm=None, source_format=image.format.lower())


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode in ("I", "F"):
        return _rescale16(np.asarray(image, dtype=np.float64))
    if image.mode != "L":
        image = image.convert("L")  # colour, palette, alpha, 1-bit, CMYK
    return np.asarray(image, dtype=np.uint8)


def _rescale16(array: np.ndarray) -> np.ndarray:
    """Any numeric range -> uint16, keeping order (signed or >16-bit data)."""
    array = array.astype(np.float64)
    lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
    if 0 <= lo and hi <= 65535:
        return array.astype(np.uint16)
    scale = 65535.0 / (hi - lo) if hi > lo else 0.0
    return ((array - lo) * scale).astype(np.uint16)


def _decode_dicom(data: bytes, max_pixels: int) -> DecodedImage:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except Exception:
        raise undecodable("DICOM file could not be read or has no image") from None
    _check_pixels(cols, rows, frames, max_pixels)
    try:
        array = ds.pixel_array
    except Exception as exc:
        raise undecodable(f"DICOM pixel data could not be decoded ({type(exc).__name__})") from None
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames > 1:
        array = array[0]
    if array.ndim == 3:  # colour DICOM: luminance
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if array.dtype == np.uint8:
        pixels = array
    else:
        pixels = _rescale16(array)
    if photometric == "MONOCHROME1":  # bright = air in the file; pipelines expect bright = dense
        pixels = np.iinfo(pixels.dtype).max - pixels
    pixels = np.ascontiguousarray(pixels)
    return DecodedImage(pixels=pixels, pixel_spacing_mm=_spacing(ds), source_format="dicom")


def _spacing(ds: object) -> float | None:
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = getattr(ds, name, None)
        if value is None:
            continue
        try:
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row > 0 and col > 0 and abs(row - col) / max(row, col) < 0.01:
            return (row + col) / 2
        return None  # anisotropic: no single spacing
    return None
