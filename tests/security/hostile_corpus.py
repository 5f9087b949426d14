"""Hostile image files for the decoder, built in code (tests only; nothing binary is committed).

Every file is at most limits.max_image_bytes (20 MiB), so each one can reach the worker. The bombs
are cheap to build: a run of zeros is deflated once per 16 MiB block and the block's compressed
bytes repeated (a full flush resets the compressor, so the copies are identical and the stream
stays exact), which makes a 2.4 GB deflate stream of 2.3 MB in a fraction of a second.

`CASES` lists them with what the decoder must answer: "refused" (11002, the message containing
`says`) or "decoded" (an image of `shape`; the largest images the limits allow, and files whose
junk the decoder never has to read). `build(name)` returns a case's bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from tests.security.dicom_samples import dataset

MAX_IMAGE_BYTES = 20 * 2**20  # limits.max_image_bytes: every case fits in an upload
BLOCK = 16 * 2**20
ADLER = 65521
# The largest image limits.max_image_pixels (120 MP) allows, as 10000 rows of 12000 columns.
LARGEST = (10_000, 12_000)
PATIENT_NAME, PATIENT_ID = "Hostile^Harriet", "PID-4711"


# ---- deflate ----------------------------------------------------------------------------------


def deflate_zeros(total: int, prefix: bytes = b"", suffix: bytes = b"", wrap: bool = False) -> bytes:
    """prefix + `total` zero bytes + suffix, deflated: raw (DICOM) or zlib-wrapped with its Adler-32
    (PNG, TIFF). The zeros cost one compressed 16 MiB block, repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [c.compress(prefix), c.flush(zlib.Z_FULL_FLUSH)]
    blocks, rest = divmod(total, BLOCK)
    if blocks:
        out.append((c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)) * blocks)
    out += [c.compress(bytes(rest)), c.compress(suffix), c.flush()]
    raw = b"".join(out)
    if not wrap:
        return raw
    # Adler-32 of prefix + zeros + suffix: zeros leave a alone and add a to b once per byte.
    a, b = (lambda v: (v & 0xFFFF, v >> 16))(zlib.adler32(prefix))
    b = (b + total * a) % ADLER
    checksum = zlib.adler32(suffix, (b << 16) | a)
    return b"\x78\xda" + raw + struct.pack(">I", checksum)


# ---- DICOM ------------------------------------------------------------------------------------


def _dicom_parts(syntax: UID, rows: int, cols: int, bits: int = 16) -> tuple[bytes, bytes, bytes]:
    """(preamble + file meta, then the data set before Pixel Data in Explicit VR Little Endian in
    two parts: its group-8 elements, and the rest (Rows, Columns and the other image elements))."""
    ds = dataset(np.zeros((1, 1), np.uint8 if bits == 8 else np.uint16), syntax)
    ds.Rows, ds.Columns = rows, cols
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID  # must never reach an error message
    meta = DicomBytesIO()
    meta.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    parts = []
    for keep in (lambda tag: tag < 0x00090000, lambda tag: tag >= 0x00090000):
        body = DicomBytesIO()
        body.is_little_endian, body.is_implicit_VR = True, False
        write_dataset(body, Dataset({tag: ds[tag] for tag in ds.keys() if keep(tag)}))
        parts.append(body.getvalue())
    return meta.getvalue(), parts[0], parts[1]


def _dicom_head(syntax: UID, rows: int, cols: int, bits: int = 16) -> tuple[bytes, bytes]:
    """(preamble + file meta, the whole data set before Pixel Data)."""
    meta, group8, rest = _dicom_parts(syntax, rows, cols, bits)
    return meta, group8 + rest


PRIVATE_CREATOR = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 4) + b"ACME"


def _element(group: int, elem: int, vr: bytes, length: int) -> bytes:
    """An Explicit VR Little Endian element header with a 4-byte length (OB, OW, UN, SQ)."""
    return struct.pack("<HH2sHI", group, elem, vr, 0, length)


SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def pixel_header(length: int) -> bytes:
    return _element(0x7FE0, 0x0010, b"OW", length)


def dicom_deflate_bomb() -> bytes:
    """The issue's file: an honest 2900x1400 16-bit header, Pixel Data claiming and inflating to
    2.4 GB (pydicom inflated it all, 7.1 GB and 28 s, and answered with a 295x1400 image)."""
    meta, body = _dicom_head(DeflatedExplicitVRLittleEndian, 1400, 2900)
    size = 2_400_000_000
    return meta + deflate_zeros(size, prefix=body + pixel_header(size))


def dicom_deflate_trailing_bomb() -> bytes:
    """An exact 2900x1400 image followed by a 2.4 GB trailing padding element: nothing after the
    pixels is needed, so it is never inflated."""
    meta, body = _dicom_head(DeflatedExplicitVRLittleEndian, 1400, 2900)
    pixels = 1400 * 2900 * 2
    size = 2_400_000_000
    tail = _element(0xFFFC, 0xFFFC, b"OB", size)
    return meta + deflate_zeros(size, prefix=body + pixel_header(pixels) + bytes(pixels) + tail)


def dicom_deflate_header_bomb() -> bytes:
    """A 2.4 GB private element before Rows and Columns: the header never ends."""
    meta, group8, rest = _dicom_parts(DeflatedExplicitVRLittleEndian, 1400, 2900)
    size = 2_400_000_000
    private = PRIVATE_CREATOR + _element(0x0009, 0x1010, b"OB", size)
    return meta + deflate_zeros(size, prefix=group8 + private, suffix=rest + pixel_header(0))


def dicom_deflate_largest() -> bytes:
    """The largest allowed image, deflated: 10000x12000 16-bit (240 MB of pixels in 230 KB)."""
    rows, cols = LARGEST
    meta, body = _dicom_head(DeflatedExplicitVRLittleEndian, rows, cols)
    return meta + deflate_zeros(rows * cols * 2, prefix=body + pixel_header(rows * cols * 2))


def dicom_deflate_truncated() -> bytes:
    meta, body = _dicom_head(DeflatedExplicitVRLittleEndian, 300, 320)
    pixels = (np.arange(300 * 320) % 4000).astype("<u2").tobytes()
    stream = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = stream.compress(body + pixel_header(len(pixels)) + pixels) + stream.flush()
    return meta + data[: len(data) // 2]


def _native(rows: int, cols: int, pixel_bytes: int, declared: int | None = None) -> bytes:
    meta, body = _dicom_head(ExplicitVRLittleEndian, rows, cols)
    pixels = (np.arange(pixel_bytes // 2) % 4000).astype("<u2").tobytes()
    return meta + body + pixel_header(len(pixels) if declared is None else declared) + pixels


def dicom_pixel_data_too_long() -> bytes:
    """300x320 16-bit header, Pixel Data of 300x330 pixels (pydicom trimmed it silently)."""
    return _native(300, 320, 300 * 330 * 2)


def dicom_pixel_data_too_short() -> bytes:
    return _native(300, 320, 290 * 320 * 2)


def dicom_truncated() -> bytes:
    """Pixel Data declares 300x320 16-bit; the file ends halfway through it."""
    return _native(300, 320, 150 * 320 * 2, declared=300 * 320 * 2)


def dicom_huge_dims() -> bytes:
    return _native(60_000, 60_000, 64)


def dicom_item_flood() -> bytes:
    """An undefined-length sequence of 2 million empty items before the image (16 MiB)."""
    meta, group8, rest = _dicom_parts(ExplicitVRLittleEndian, 300, 320)
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * 2_000_000
    flood = _element(0x0009, 0x1010, b"SQ", 0xFFFFFFFF) + items + SEQUENCE_END
    pixels = bytes(300 * 320 * 2)
    return meta + group8 + PRIVATE_CREATOR + flood + rest + pixel_header(len(pixels)) + pixels


def _encapsulated(syntax: UID, rows: int, cols: int, frame: bytes) -> bytes:
    meta, body = _dicom_head(syntax, rows, cols, bits=8)
    return meta + body + _element(0x7FE0, 0x0010, b"OB", 0xFFFFFFFF) + encapsulate([frame]) + SEQUENCE_END


def _rle_frame(segment: bytes) -> bytes:
    return struct.pack("<16I", 1, 64, *([0] * 14)) + segment


def dicom_rle_bomb() -> bytes:
    """300x320 8-bit RLE whose one segment is 9 million replicate runs: 1.15 GB decoded."""
    return _encapsulated(RLELossless, 300, 320, _rle_frame(b"\x81\x00" * 9_000_000))


def dicom_rle_largest() -> bytes:
    rows, cols = LARGEST
    return _encapsulated(RLELossless, rows, cols, _rle_frame(b"\x81\x00" * (rows * cols // 128)))


def dicom_jpeg_lying() -> bytes:
    """The header says 300x320; the JPEG in it is 30000x30000 (900 MB of gray in 10.5 MB)."""
    return _encapsulated(JPEGBaseline8Bit, 300, 320, gray_jpeg(30_000, 30_000))


def dicom_jpeg_largest() -> bytes:
    rows, cols = LARGEST
    return _encapsulated(JPEGBaseline8Bit, rows, cols, gray_jpeg(cols, rows))


# ---- JPEG -------------------------------------------------------------------------------------


def gray_jpeg(width: int, height: int, blocks: int | None = None) -> bytes:
    """A valid baseline JPEG of mid-gray, any size, cheaply: Pillow's 8x8 file with its frame
    header resized, and a scan of zero blocks (6 bits each with the standard Huffman tables:
    DC difference 0 '00', end of block '1010'), four blocks in three bytes."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    sos = data.index(b"\xff\xda")
    header = bytes(data[: sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]])
    if blocks is None:
        blocks = -(-width // 8) * -(-height // 8)
    quads, rest = divmod(blocks, 4)
    tail = int("001010" * rest + "1" * (-6 * rest % 8), 2).to_bytes(-(-6 * rest // 8), "big") if rest else b""
    return header + b"\x28\xa2\x8a" * quads + tail + b"\xff\xd9"


def jpeg_huge_dims() -> bytes:
    return gray_jpeg(60_000, 60_000, blocks=64)


def jpeg_truncated() -> bytes:
    data = _real("JPEG")
    return data[: len(data) * 2 // 3]


def jpeg_largest() -> bytes:
    rows, cols = LARGEST
    return gray_jpeg(cols, rows)


# ---- PNG --------------------------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, idat: bytes, *, depth: int = 8, color: int = 0, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def _png_zeros(width: int, height: int, bytes_per_pixel: int = 1, **kwargs: object) -> bytes:
    """A PNG of zeros; each row is a filter byte (0, none) and zero pixels."""
    idat = deflate_zeros(height * (1 + width * bytes_per_pixel), wrap=True)
    return png(width, height, idat, **kwargs)  # type: ignore[arg-type]


def _small_png(extra: bytes) -> bytes:
    return png(320, 300, zlib.compress(bytes(300 * 321)), extra=extra)


def png_ztxt_bomb() -> bytes:
    """A zTXt chunk inflating to 1 GB."""
    return _small_png(png_chunk(b"zTXt", b"Comment\0\0" + deflate_zeros(2**30, wrap=True)))


def png_itxt_bomb() -> bytes:
    """A compressed iTXt chunk inflating to 1 GB."""
    return _small_png(png_chunk(b"iTXt", b"Comment\0\1\0\0\0" + deflate_zeros(2**30, wrap=True)))


def png_iccp_bomb() -> bytes:
    """An ICC profile inflating to 1 GB."""
    return _small_png(png_chunk(b"iCCP", b"icc\0\0" + deflate_zeros(2**30, wrap=True)))


def png_text_flood() -> bytes:
    """About 600 000 small tEXt chunks, each with a key of its own (20 MiB)."""
    chunks = b"".join(png_chunk(b"tEXt", b"k%06d\0v" % i) for i in range(600_000))
    return _small_png(chunks)


def png_idat_bomb() -> bytes:
    """A 1000x1000 gray header over image data inflating to 2 GB (one 1 MB image, then zeros)."""
    return png(1000, 1000, deflate_zeros(2_000_000_000, wrap=True))


def png_huge_dims() -> bytes:
    return png(100_000, 100_000, zlib.compress(bytes(1000)))


def png_rgba_100mp() -> bytes:
    """100 MP of RGBA: under the pixel limit, but 400 MB once decoded."""
    return _png_zeros(10_000, 10_000, 4, color=6)


def png_truncated() -> bytes:
    data = _real("PNG")
    return data[: len(data) * 2 // 3]


def png_gray16_largest() -> bytes:
    rows, cols = LARGEST
    return _png_zeros(cols, rows, 2, depth=16)


def png_rgb_largest() -> bytes:
    """The largest colour PNG the decoded-bytes limit allows: 64 MP of RGB (256 MiB in Pillow)."""
    return _png_zeros(8192, 8192, 3, color=2)


# ---- TIFF and BMP -----------------------------------------------------------------------------


def tiff(width: int, height: int, strip: bytes, *, compression: int = 1, bits: int = 8,
         sample_format: int = 1, pages: int = 1) -> bytes:
    """A little-endian TIFF of one strip per page; every page points to the same strip."""
    entries = [
        (256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, compression), (262, 3, 1),
        (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, len(strip)), (339, 3, sample_format),
    ]
    first = 8 + len(strip) + len(strip) % 2
    size = 2 + 12 * len(entries) + 4
    out = [b"II*\0", struct.pack("<I", first), strip, b"\0" * (len(strip) % 2)]
    for page in range(pages):
        following = first + (page + 1) * size if page + 1 < pages else 0
        ifd = [struct.pack("<H", len(entries))]
        for tag, kind, value in entries:
            packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
            ifd.append(struct.pack("<HHI", tag, kind, 1) + packed)
        ifd.append(struct.pack("<I", following))
        out.append(b"".join(ifd))
    return b"".join(out)


def tiff_deflate_bomb() -> bytes:
    """A 1000x1000 gray header over a deflate strip inflating to 2 GB."""
    return tiff(1000, 1000, deflate_zeros(2_000_000_000, wrap=True), compression=8)


def tiff_pages() -> bytes:
    """20 000 pages of 4000x4000 (320 GP in all); only the first page is an image to read."""
    return tiff(4000, 4000, deflate_zeros(4000 * 4000, wrap=True), compression=8, pages=20_000)


def tiff_float_100mp() -> bytes:
    """100 MP of 32-bit float: under the pixel limit, but 400 MB once decoded."""
    return tiff(10_000, 10_000, deflate_zeros(4 * 10**8, wrap=True), compression=8, bits=32, sample_format=3)


def tiff_huge_dims() -> bytes:
    return tiff(60_000, 60_000, zlib.compress(bytes(1000)), compression=8)


def bmp_huge_dims() -> bytes:
    data = bytearray(_real("BMP", np.zeros((2, 2), np.uint8)))
    data[18:26] = struct.pack("<ii", 60_000, 60_000)  # BITMAPINFOHEADER width and height
    return bytes(data)


def _real(fmt: str, pixels: np.ndarray | None = None) -> bytes:
    if pixels is None:
        pixels = (np.arange(300 * 320, dtype=np.uint32).reshape(300, 320) * 7 % 251).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


# ---- the corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    expect: str  # "refused" (11002) or "decoded"
    says: str = ""  # refused: a part of the message
    shape: tuple[int, int] | None = None  # decoded: the image's shape


TOO_LARGE = "larger than the limit"
TOO_MANY_BYTES = "decoded bytes"
CASES = [
    Case("dicom_deflate_bomb", dicom_deflate_bomb, "refused", "Pixel Data is 2400000000 bytes"),
    Case("dicom_deflate_trailing_bomb", dicom_deflate_trailing_bomb, "decoded", shape=(1400, 2900)),
    Case("dicom_deflate_header_bomb", dicom_deflate_header_bomb, "refused", "header is over"),
    Case("dicom_deflate_truncated", dicom_deflate_truncated, "refused", "truncated"),
    Case("dicom_deflate_largest", dicom_deflate_largest, "decoded", shape=LARGEST),
    Case("dicom_pixel_data_too_long", dicom_pixel_data_too_long, "refused", "Pixel Data is 198000 bytes"),
    Case("dicom_pixel_data_too_short", dicom_pixel_data_too_short, "refused", "Pixel Data is 185600 bytes"),
    Case("dicom_truncated", dicom_truncated, "refused", "Pixel Data is 96000 bytes"),
    Case("dicom_huge_dims", dicom_huge_dims, "refused", TOO_LARGE),
    Case("dicom_item_flood", dicom_item_flood, "refused", "elements and items"),
    Case("dicom_rle_bomb", dicom_rle_bomb, "refused", "RLE segment"),
    Case("dicom_rle_largest", dicom_rle_largest, "decoded", shape=LARGEST),
    Case("dicom_jpeg_lying", dicom_jpeg_lying, "refused", "30000x30000"),
    Case("dicom_jpeg_largest", dicom_jpeg_largest, "decoded", shape=LARGEST),
    Case("jpeg_huge_dims", jpeg_huge_dims, "refused", TOO_LARGE),
    Case("jpeg_truncated", jpeg_truncated, "refused", "JPEG image could not be decoded"),
    Case("jpeg_largest", jpeg_largest, "decoded", shape=LARGEST),
    Case("png_ztxt_bomb", png_ztxt_bomb, "refused", "PNG image could not be read"),
    Case("png_itxt_bomb", png_itxt_bomb, "refused", "PNG image could not be read"),
    Case("png_iccp_bomb", png_iccp_bomb, "refused", "PNG image could not be read"),
    Case("png_text_flood", png_text_flood, "decoded", shape=(300, 320)),
    Case("png_idat_bomb", png_idat_bomb, "decoded", shape=(1000, 1000)),
    Case("png_huge_dims", png_huge_dims, "refused", TOO_LARGE),
    Case("png_rgba_100mp", png_rgba_100mp, "refused", TOO_MANY_BYTES),
    Case("png_truncated", png_truncated, "refused", "PNG image could not be decoded"),
    Case("png_gray16_largest", png_gray16_largest, "decoded", shape=LARGEST),
    Case("png_rgb_largest", png_rgb_largest, "decoded", shape=(8192, 8192)),
    Case("tiff_deflate_bomb", tiff_deflate_bomb, "decoded", shape=(1000, 1000)),
    Case("tiff_pages", tiff_pages, "decoded", shape=(4000, 4000)),
    Case("tiff_float_100mp", tiff_float_100mp, "refused", TOO_MANY_BYTES),
    Case("tiff_huge_dims", tiff_huge_dims, "refused", TOO_LARGE),
    Case("bmp_huge_dims", bmp_huge_dims, "refused", TOO_LARGE),
]
BY_NAME = {case.name: case for case in CASES}


def build(name: str) -> bytes:
    data = BY_NAME[name].make()
    assert len(data) <= MAX_IMAGE_BYTES, f"{name} is {len(data)} bytes, over the upload limit"
    return data
