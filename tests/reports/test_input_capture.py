"""How image.dcm and overlay.dcm store their pixels (issue 31 item 5: the artifacts are kept in
Redis as long as the task, in proportion to the upload): a baseline JPEG upload as its own stream
without its APPn and COM segments, anything else JPEG-LS lossless; the overlay as the PDF's JPEG.
Each file is read back by pydicom (its decoders) and checked by dciodvfy."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from artifacts import jpeg_stream
from artifacts.make import Source, make_artifacts
from grpc_server.decode import decode_image
from tests.reports import samples
from tests.reports.conftest import MAX_SIDE, write

DCIODVFY = shutil.which("dciodvfy")
NAME = b"Doe^Jane"


def film(size: tuple[int, int] = (900, 600)) -> np.ndarray:
    """A gray picture with texture (rows x columns), like a radiograph's."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    base = 110 + 60 * np.sin(x / 70.0) * np.cos(y / 55.0)
    return np.clip(base + rng.normal(0, 6, size), 0, 255).astype(np.uint8)


def jpeg_upload(pixels: np.ndarray, mode: str = "L", **save: object) -> bytes:
    """A JPEG as a camera or a PACS export writes one: EXIF (with a person's name), a comment."""
    image = Image.fromarray(pixels).convert(mode)
    exif = Image.Exif()
    exif[0x013B] = NAME.decode()  # Artist
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, comment=NAME, exif=exif.tobytes(), **save)
    return buf.getvalue()


def artifacts_of(raw: bytes, deidentify: bool = True) -> tuple[dict[str, bytes], np.ndarray]:
    image = decode_image(raw, 10**8)
    src = Source("pano", samples.pano_result(), image.pixels, raw, image.source_format, "cap-1",
                 deidentify=deidentify, owner="c")  # fmt: skip
    return make_artifacts(src, MAX_SIDE), image.pixels


def read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def frame_of(ds: pydicom.Dataset) -> bytes:
    (frame,) = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)
    return frame


def dciodvfy_errors(tmp_path: Path, name: str, data: bytes) -> list[str]:
    if DCIODVFY is None:
        return []
    run = subprocess.run([DCIODVFY, str(write(tmp_path, name, data))], capture_output=True, text=True)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("deidentify", [True, False])
def test_a_gray_baseline_jpeg_is_kept_as_its_stream_without_its_metadata(deidentify: bool, tmp_path: Path):
    raw = jpeg_upload(film())
    assert NAME in raw
    files, pixels = artifacts_of(raw, deidentify)
    ds = read(files["image.dcm"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert ds.LossyImageCompression == "01"  # lossy, by the upload's own compression
    frame = frame_of(ds)
    scan = raw[raw.index(b"\xff\xda") :]
    assert frame.rstrip(b"\0").endswith(scan)  # the upload's scan, untouched
    assert NAME not in files["image.dcm"] and b"Exif" not in frame
    assert np.array_equal(ds.pixel_array, pixels)  # what the analysis saw
    assert len(files["image.dcm"]) < len(raw) + 4096
    assert not dciodvfy_errors(tmp_path, "image.dcm", files["image.dcm"])


def test_a_colour_jpeg_is_kept_as_ybr(tmp_path: Path):
    """Tufts-like: a radiograph saved as a YCbCr 4:2:0 JPEG (the analysis saw its luminance)."""
    raw = jpeg_upload(film(), mode="RGB", subsampling="4:2:0")
    files, pixels = artifacts_of(raw)
    ds = read(files["image.dcm"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert (ds.SamplesPerPixel, ds.PlanarConfiguration) == (3, 0)
    assert ds.pixel_array.shape == (*pixels.shape, 3)
    assert NAME not in files["image.dcm"]
    assert not dciodvfy_errors(tmp_path, "image.dcm", files["image.dcm"])


@pytest.mark.parametrize("kind", ["png8", "png16", "progressive"])
def test_other_uploads_are_jpeg_ls_lossless(kind: str, tmp_path: Path):
    pixels = film()
    if kind == "progressive":
        raw = jpeg_upload(pixels, progressive=True)
    else:
        data = pixels if kind == "png8" else pixels.astype(np.uint16) * 16  # a 12-bit detector's range
        buf = io.BytesIO()
        Image.fromarray(data).save(buf, "PNG")
        raw = buf.getvalue()
    files, decoded = artifacts_of(raw)
    ds = read(files["image.dcm"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLSLossless
    assert np.array_equal(ds.pixel_array, decoded)  # lossless
    assert len(files["image.dcm"]) < decoded.nbytes * 0.9  # smaller than an uncompressed copy
    if kind == "png8":
        assert len(files["image.dcm"]) < len(raw)  # and than the PNG (ISBI 100: 1.31 MB, 1.64 MB)
    assert NAME not in files["image.dcm"]
    assert not dciodvfy_errors(tmp_path, "image.dcm", files["image.dcm"])


def test_overlay_dcm_is_the_pdfs_jpeg(tmp_path: Path):
    files, _ = artifacts_of(jpeg_upload(film()))
    ds = read(files["overlay.dcm"])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.SamplesPerPixel == 3
    assert ds.BurnedInAnnotation == "YES"
    frame = frame_of(ds).rstrip(b"\0")
    assert frame[frame.index(b"\xff\xda") :] in files["report.pdf"]  # one picture, stored twice
    png = np.asarray(Image.open(io.BytesIO(files["overlay.png"])).convert("RGB")).astype(int)
    assert np.abs(ds.pixel_array.astype(int) - png).mean() < 4  # JPEG at quality 88
    assert not dciodvfy_errors(tmp_path, "overlay.dcm", files["overlay.dcm"])


def test_streams_that_are_not_kept():
    pixels = film((64, 80))
    raw = jpeg_upload(pixels)
    assert jpeg_stream.baseline(raw, (64, 80)) is not None
    assert jpeg_stream.baseline(raw, (80, 64)) is None  # not the decoded image's size
    assert jpeg_stream.baseline(raw[: len(raw) // 2], (64, 80)) is None  # cut short
    assert jpeg_stream.baseline(b"\x89PNG\r\n", (64, 80)) is None
    # An Adobe APP14 segment with transform 0: the three components are R, G, B, not YCbCr.
    colour = jpeg_upload(pixels, mode="RGB")
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
    assert jpeg_stream.baseline(colour, (64, 80)) is not None
    assert jpeg_stream.baseline(colour[:2] + adobe + colour[2:], (64, 80)) is None
