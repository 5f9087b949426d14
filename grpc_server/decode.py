"""Image bytes -> DecodedImage (2-D gray, uint8 or uint16), or DentalAIError 11002.

PNG, JPEG, TIFF (its first page) and BMP through Pillow, DICOM through pydicom. Every size is read
from a header and checked before anything is inflated, decoded or allocated, so that decoding any
input of at most limits.max_image_bytes stays under a memory bound:

- width x height (x frames) <= limits.max_image_pixels, and the bytes the decoder itself produces
  (Pillow: 1, 2 or 4 bytes per pixel by mode, plus a progressive JPEG's coefficients; DICOM: all
  frames x samples x bytes per sample) <= limits.max_decoded_bytes;
- DICOM, Deflated Explicit VR Little Endian: at most DICOM_HEADER_BYTES are inflated before the
  Pixel Data element is found, whose length must then be exactly what Rows, Columns, frames,
  samples and BitsAllocated declare; exactly that many bytes are inflated into one buffer, and
  nothing after them (pydicom itself would inflate the whole stream first);
- DICOM, uncompressed: Pixel Data must be exactly the declared size (not shorter: truncated; not
  longer: the image would be cut from the wrong bytes);
- DICOM, compressed (JPEG, JPEG-LS, JPEG 2000, RLE; other transfer syntaxes are refused): the
  first frame's own header (JPEG frame header, JPEG 2000 SIZ) must give the DICOM header's size,
  and each RLE segment is scanned (without output) to decode to at most twice Rows x Columns
  bytes before pydicom decodes it; only the first frame is decoded;
- DICOM data sets are parsed with at most DICOM_MAX_READS reads (about two per element or item:
  pydicom keeps objects of about 0.7 KB per sequence item, so 2 million empty items in 16 MiB
  would cost 1.4 GB);
- PNG text and ICC chunks are inflated by Pillow to 1 MiB each at most (64 MiB in all), image data
  only as far as the header's rows; truncated data of any format is 11002;
- conversions to gray work on strips of rows (STRIP_BYTES), never on a float64 copy of the image.

With the defaults (20 MiB uploads, 120 MP, 256 MiB decoded) the peak is about 0.55 GiB and the
stated bound is 1 GiB: roughly the interpreter (60 MB) + the input + the decoder's output (at most
max_decoded_bytes) + the returned image (at most 2 bytes x max_image_pixels) + a progressive JPEG's
coefficients. tests/security/test_hostile_decode_memory.py measures it per hostile file.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from PIL import Image

from dentalai.errors import DentalAIError, ErrorCode
from pipelines.base_pipeline import DecodedImage

PILLOW_FORMATS = {"PNG", "JPEG", "TIFF", "BMP"}
Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels) applies, with our own error code
DEFAULT_MAX_DECODED_BYTES = 256 * 2**20  # limits.max_decoded_bytes
DICOM_HEADER_BYTES = 16 * 2**20  # deflated DICOM: inflated at most before Pixel Data
DICOM_MAX_READS = 100_000  # reads pydicom may make of one data set
STRIP_BYTES = 4 * 2**20  # gray conversion works on strips of rows this large
_INFLATE_IN = 64 * 1024  # compressed bytes fed to zlib at a time
_INFLATE_OUT = 4 * 2**20  # inflated bytes asked of zlib at a time
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\0": "TIFF", b"MM\0*": "TIFF", b"BM": "BMP"}
# (7FE0,0010) Pixel Data, (7FE0,0008) Float and (7FE0,0009) Double Float Pixel Data.
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_PIXEL_TAGS_LE = {struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in _PIXEL_TAGS}
_PIXEL_TAGS_BE = {struct.pack(">HH", tag >> 16, tag & 0xFFFF) for tag in _PIXEL_TAGS}
_JPEG_SOF = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7}


def undecodable(message: str) -> DentalAIError:
    return DentalAIError(ErrorCode.IMAGE_DECODE_FAILED, message)


def is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def decode_image(
    data: bytes, max_pixels: int, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> DecodedImage:
    if is_dicom(data):
        return _decode_dicom(data, max_pixels, max_decoded_bytes)
    return _decode_pillow(data, max_pixels, max_decoded_bytes)


def dicom_header(data: bytes) -> tuple[Any, bool]:
    """(the data set of a DICOM file up to its Pixel Data, whether Pixel Data follows), read with
    the bounds of decoding (at most DICOM_MAX_READS reads; a deflated one inflated only up to
    DICOM_HEADER_BYTES). The DICOM node routes a received instance by these tags before it stores
    it, so it must not read more than the worker would. 11002 when the data set cannot be read."""
    import pydicom
    from pydicom.filereader import read_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        syntax, meta_end = _file_meta(data)
        head = _Inflater(memoryview(data)[meta_end:]).read(DICOM_HEADER_BYTES) if syntax == DEFLATED else data
        reader = _Reader(head)
        try:
            if syntax == DEFLATED:
                ds = read_dataset(reader, False, True, stop_when=lambda tag, vr, length: tag in _PIXEL_TAGS)
            else:
                ds = pydicom.dcmread(reader, stop_before_pixels=True)
        except Exception:
            too_many = reader.reads > DICOM_MAX_READS
            raise undecodable(
                f"DICOM data set has more than {DICOM_MAX_READS} elements and items"
                if too_many
                else "DICOM data set could not be read"
            ) from None
    start = reader.tell()
    return ds, head[start : start + 4] in _PIXEL_TAGS_LE | _PIXEL_TAGS_BE


def _check_pixels(width: int, height: int, frames: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise undecodable("image has no pixels")
    if width * height * max(frames, 1) > max_pixels:
        raise undecodable(f"image of {width}x{height} pixels is larger than the limit of {max_pixels} pixels")


def _check_bytes(width: int, height: int, decoded: int, max_bytes: int) -> None:
    if decoded > max_bytes:
        raise undecodable(
            f"image of {width}x{height} pixels decodes to {decoded} bytes, "
            f"more than the limit of {max_bytes} decoded bytes"
        )


# ---- Pillow -----------------------------------------------------------------------------------


def _decode_pillow(data: bytes, max_pixels: int, max_bytes: int) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Exception as exc:
        named = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
        if named:  # text chunks inflating past Pillow's 1 MiB cap land here too
            raise undecodable(f"{named} image could not be read ({type(exc).__name__})") from None
        raise undecodable("not a supported image (PNG, JPEG, TIFF, BMP or DICOM)") from None
    with image:
        if image.format not in PILLOW_FORMATS:
            raise undecodable(f"unsupported image format {image.format}; use PNG, JPEG, TIFF, BMP or DICOM")
        _check_pixels(image.width, image.height, 1, max_pixels)
        _check_bytes(image.width, image.height, image.width * image.height * _pillow_bytes(image), max_bytes)
        try:
            image.load()
            pixels = _pillow_gray(image)
        except DentalAIError:
            raise
        except Exception as exc:
            raise undecodable(f"{image.format} image could not be decoded ({type(exc).__name__})") from None
        return DecodedImage(pixels=pixels, pixel_spacing_mm=None, source_format=image.format.lower())


def _pillow_bytes(image: Image.Image) -> int:
    """Bytes per pixel Pillow allocates to decode `image`: its mode's pixel size, and for a
    progressive JPEG libjpeg's whole-image coefficients (2 bytes per component)."""
    mode = image.mode
    size = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if image.format == "JPEG" and (image.info.get("progressive") or image.info.get("progression")):
        size += 2 * max(1, getattr(image, "layers", 1) or 1)
    return size


def _pillow_gray(image: Image.Image) -> np.ndarray:
    """The loaded image as uint8 or uint16 gray, converted strip by strip."""
    width, height = image.size
    mode = image.mode

    def strip(top: int, bottom: int) -> np.ndarray:
        part = image.crop((0, top, width, bottom))
        if mode.startswith("I;16"):
            return np.asarray(part, dtype=np.uint16)
        if mode in ("I", "F", "L"):
            return np.asarray(part)
        return np.asarray(part.convert("L"))  # colour, palette, alpha, 1-bit, CMYK

    if mode in ("I", "F"):
        return _rescale16(height, width, strip)
    return _assemble(height, width, np.uint16 if mode.startswith("I;16") else np.uint8, strip)


# ---- gray conversion in strips ----------------------------------------------------------------


Strip = Callable[[int, int], np.ndarray]


def _strips(height: int, width: int) -> list[tuple[int, int]]:
    step = max(1, STRIP_BYTES // max(1, width * 8))
    return [(top, min(height, top + step)) for top in range(0, height, step)]


def _assemble(height: int, width: int, dtype: Any, strip: Strip) -> np.ndarray:
    out = np.empty((height, width), dtype)
    for top, bottom in _strips(height, width):
        out[top:bottom] = strip(top, bottom)
    return out


def _rescale16(height: int, width: int, strip: Strip) -> np.ndarray:
    """Any numeric range -> uint16, keeping order (signed, >16-bit or float data): values within
    0..65535 are kept (truncated), others scaled from the image's min..max; two passes of strips."""
    lo, hi = np.inf, -np.inf
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for top, bottom in _strips(height, width):
            values = strip(top, bottom)
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            lo, hi = (min(lo, low), max(hi, high)) if np.isfinite(low) else (lo, hi)
    if not np.isfinite(lo):
        lo = hi = 0.0
    keep = 0 <= lo and hi <= 65535
    scale = 65535.0 / (hi - lo) if hi > lo else 0.0

    def converted(top: int, bottom: int) -> np.ndarray:
        values = strip(top, bottom).astype(np.float64)
        with np.errstate(all="ignore"):
            return values.astype(np.uint16) if keep else ((values - lo) * scale).astype(np.uint16)

    return _assemble(height, width, np.uint16, converted)


# ---- DICOM ------------------------------------------------------------------------------------


class _TooManyReads(Exception):
    pass


class _Reader(io.BytesIO):
    """What pydicom reads a data set through: at most DICOM_MAX_READS reads, and never 'all the
    rest' (which pydicom only asks for to inflate a deflated data set whole)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > DICOM_MAX_READS:
            raise _TooManyReads
        if size is None or size < 0:
            raise _TooManyReads  # pydicom's inflate-it-all: ours is _read_deflated
        return super().read(size)


@dataclass(frozen=True)
class _Geometry:
    rows: int
    cols: int
    frames: int
    samples: int
    bits: int
    photometric: str

    @property
    def stored_bytes(self) -> int:
        """Length of native Pixel Data (without its odd-length padding byte)."""
        values = self.rows * self.cols * self.frames * self.samples
        length = -(-values // 8) if self.bits == 1 else values * (self.bits // 8)
        return length // 3 * 2 if self.photometric == "YBR_FULL_422" else length

    @property
    def decoded_bytes(self) -> int:
        return self.rows * self.cols * self.frames * self.samples * max(1, self.bits // 8)

    def says(self) -> str:
        """The declared layout in words (sizes only)."""
        frames = f" x {self.frames} frames" if self.frames > 1 else ""
        samples = "1 sample" if self.samples == 1 else f"{self.samples} samples"
        return f"{self.cols}x{self.rows} pixels{frames}, {samples} of {self.bits} bits"


def _decode_dicom(data: bytes, max_pixels: int, max_bytes: int) -> DecodedImage:
    import pydicom.pixels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        syntax, meta_end = _file_meta(data)
        if syntax == DEFLATED:
            ds, geometry = _read_deflated(data, meta_end, max_pixels, max_bytes)
        else:
            ds = _read_dicom(data)
            geometry = _geometry(ds)
            _check_geometry(geometry, max_pixels, max_bytes)
            _check_pixel_data(ds, geometry)
        spacing = _spacing(ds)
        try:
            array = pydicom.pixels.pixel_array(ds, index=0)  # the first frame only
        except Exception as exc:
            raise undecodable(f"DICOM pixel data could not be decoded ({type(exc).__name__})") from None
    del ds  # the pixel bytes
    pixels = _dicom_gray(array)
    if geometry.photometric == "MONOCHROME1":  # bright = air in the file; pipelines expect bright = dense
        if pixels is array and not array.flags.writeable:
            pixels = array.copy()
        np.subtract(np.iinfo(pixels.dtype).max, pixels, out=pixels)
    return DecodedImage(pixels=np.ascontiguousarray(pixels), pixel_spacing_mm=spacing, source_format="dicom")


DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _file_meta(data: bytes) -> tuple[str | None, int]:
    """(Transfer Syntax UID, offset after the File Meta Information), read from its group-2
    elements (always Explicit VR Little Endian) after the preamble."""
    pos, syntax = 132, None
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        element, vr = struct.unpack_from("<H", data, pos + 2)[0], data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            header, length = 12, struct.unpack_from("<I", data, pos + 8)[0] if pos + 12 <= len(data) else 0
        else:
            header, length = 8, struct.unpack_from("<H", data, pos + 6)[0]
        if element == 0x0010:
            syntax = data[pos + header : pos + header + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos += header + length
    return syntax, pos


def _read_dicom(data: bytes) -> Any:
    """The whole data set (not deflated: its size is the file's), read with bounded effort."""
    import pydicom

    reader = _Reader(data)
    try:
        return pydicom.dcmread(reader)
    except Exception:
        if reader.reads > DICOM_MAX_READS:
            raise undecodable(f"DICOM data set has more than {DICOM_MAX_READS} elements and items") from None
        raise undecodable("DICOM file could not be read or has no image") from None


def _read_deflated(data: bytes, meta_end: int, max_pixels: int, max_bytes: int) -> tuple[Any, _Geometry]:
    """A Deflated Explicit VR Little Endian data set, inflated with bounds (see the module
    docstring): its header, then exactly the Pixel Data its header declares, nothing after."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset
    from pydicom.uid import ExplicitVRLittleEndian

    inflater = _Inflater(memoryview(data)[meta_end:])
    head = inflater.read(DICOM_HEADER_BYTES)
    reader = _Reader(head)
    try:
        ds = read_dataset(reader, False, True, stop_when=lambda tag, vr, length: tag in _PIXEL_TAGS)
    except Exception:
        if reader.reads > DICOM_MAX_READS:
            raise undecodable(f"DICOM data set has more than {DICOM_MAX_READS} elements and items") from None
        raise undecodable("DICOM file could not be read or has no image") from None
    start = reader.tell()
    element = head[start : start + 12]
    if element[:4] not in _PIXEL_TAGS_LE or len(element) < 12:
        if len(head) >= DICOM_HEADER_BYTES:
            raise undecodable(f"deflated DICOM header is over {DICOM_HEADER_BYTES} bytes before Pixel Data")
        raise undecodable("DICOM file could not be read or has no image")
    geometry = _geometry(ds)
    _check_geometry(geometry, max_pixels, max_bytes)
    group, elem, vr, length = struct.unpack_from("<HH2s2xI", element)
    _check_length(length, geometry)
    pixels = bytearray(length)
    have = head[start + 12 : start + 12 + length]
    pixels[: len(have)] = have
    del head, reader
    if len(have) + inflater.readinto(memoryview(pixels)[len(have) :]) < length:
        raise undecodable("deflated DICOM data ends inside its Pixel Data (truncated)")
    # bytes, as pydicom wants them (a bytearray is taken for a list of values): one copy, and the
    # bytearray is gone before pydicom decodes.
    ds.add_new((group << 16) | elem, vr.decode("ascii"), bytes(pixels))
    del pixels
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what the inflated data set is
    return ds, geometry


class _Inflater:
    """A raw deflate stream, inflated only as far as it is read, in bounded steps."""

    def __init__(self, source: memoryview) -> None:
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._source = source
        self._pos = 0
        self._pending: bytes | memoryview = b""

    def readinto(self, out: memoryview) -> int:
        filled = 0
        try:
            while filled < len(out) and not self._zlib.eof:
                if not self._pending:
                    if self._pos >= len(self._source):
                        break
                    self._pending = self._source[self._pos : self._pos + _INFLATE_IN]
                    self._pos += _INFLATE_IN
                chunk = self._zlib.decompress(self._pending, min(len(out) - filled, _INFLATE_OUT))
                self._pending = self._zlib.unconsumed_tail
                out[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
        except zlib.error:
            raise undecodable("deflated DICOM data is corrupt") from None
        return filled

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(memoryview(buffer)[: self.readinto(memoryview(buffer))])


def _geometry(ds: Any) -> _Geometry:
    try:
        geometry = _Geometry(
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            frames=int(getattr(ds, "NumberOfFrames", 1) or 1),
            samples=int(getattr(ds, "SamplesPerPixel", 1) or 1),
            bits=int(ds.BitsAllocated),
            photometric=str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper(),
        )
    except Exception:
        raise undecodable("DICOM file could not be read or has no image") from None
    return geometry


def _check_geometry(geometry: _Geometry, max_pixels: int, max_bytes: int) -> None:
    g = geometry
    if g.bits not in (1, 8, 16, 32, 64) or not 1 <= g.samples <= 4 or g.frames < 1:
        raise undecodable(f"DICOM image of {g.says()} is not a supported layout")
    _check_pixels(g.cols, g.rows, g.frames, max_pixels)
    _check_bytes(g.cols, g.rows, g.decoded_bytes, max_bytes)


def _check_length(length: int, geometry: _Geometry) -> None:
    """Native Pixel Data must hold exactly the declared pixels (plus an odd length's padding)."""
    expected = geometry.stored_bytes
    if length != expected and not (expected % 2 and length == expected + 1):
        raise undecodable(f"DICOM Pixel Data is {length} bytes, but {geometry.says()} need {expected} bytes")


def _check_pixel_data(ds: Any, geometry: _Geometry) -> None:
    from pydicom.encaps import get_frame
    from pydicom.uid import (
        JPEG2000TransferSyntaxes,
        JPEGLSTransferSyntaxes,
        JPEGTransferSyntaxes,
        RLELossless,
        UncompressedTransferSyntaxes,
    )

    syntax = ds.file_meta.get("TransferSyntaxUID") if ds.get("file_meta") is not None else None
    tag = next((tag for tag in _PIXEL_TAGS if tag in ds), None)
    if tag is None:
        raise undecodable("DICOM file has no Pixel Data (or it is cut short)")
    value = ds[tag].value
    if syntax is None or syntax in UncompressedTransferSyntaxes or tag != _PIXEL_TAGS[0]:
        _check_length(len(value), geometry)
        return
    jpeg = syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes
    if not (jpeg or syntax in JPEG2000TransferSyntaxes or syntax == RLELossless):
        raise undecodable(f"DICOM transfer syntax {syntax} is not supported")
    try:
        frame = get_frame(value, 0, number_of_frames=geometry.frames)
    except Exception:
        raise undecodable("DICOM compressed pixel data could not be read") from None
    if syntax == RLELossless:
        _check_rle(frame, geometry)
        return
    size = _jpeg_size(frame) if jpeg else _j2k_size(frame)
    if size is None:
        raise undecodable("DICOM compressed frame has no readable frame header")
    width, height, components = size
    if (width, height, components) != (geometry.cols, geometry.rows, geometry.samples):
        raise undecodable(
            f"DICOM compressed frame is {width}x{height} with {components} components, "
            f"but the header declares {geometry.cols}x{geometry.rows} with {geometry.samples}"
        )


def _jpeg_size(frame: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG or JPEG-LS frame header (SOFn / SOF55)."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF and pos + 10 <= len(frame):
            height, width, components = struct.unpack_from(">HHB", frame, pos + 5)
            return width, height, components
        if marker == 0xDA:  # a scan before any frame header
            return None
        pos += 2 + struct.unpack_from(">H", frame, pos + 2)[0]
    return None


def _j2k_size(frame: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG 2000 codestream's SIZ segment (bare or in JP2)."""
    pos = frame.find(b"\xff\x4f\xff\x51")
    if pos < 0 or pos + 42 > len(frame):
        return None
    x, y, x0, y0 = struct.unpack_from(">IIII", frame, pos + 8)
    components = struct.unpack_from(">H", frame, pos + 40)[0]
    return x - x0, y - y0, components


def _check_rle(frame: bytes, geometry: _Geometry) -> None:
    """Each RLE segment may hold and decode to at most twice Rows x Columns bytes (pydicom trims
    what is over Rows x Columns, but only after building it whole, up to 64 times the segment's
    size; a literal run costs one byte per 128, so no real segment comes near twice)."""
    segments = geometry.samples * max(1, geometry.bits // 8)
    if len(frame) < 64:
        raise undecodable("DICOM RLE frame is shorter than its header")
    header = struct.unpack_from("<16I", frame)
    offsets = [*header[1 : 1 + header[0]], len(frame)]
    if header[0] != segments or any(not 64 <= a <= b for a, b in pairwise(offsets)):
        raise undecodable(f"DICOM RLE frame has a bad segment table for {geometry.says()}")
    limit = 2 * geometry.rows * geometry.cols
    for a, b in pairwise(offsets):
        if b - a > limit or _rle_length(frame[a:b], limit) > limit:
            raise undecodable(f"DICOM RLE segment holds or makes over {limit} bytes for {geometry.says()}")


def _rle_length(segment: bytes, limit: int) -> int:
    """Bytes a PackBits segment decodes to the way pydicom decodes it; stops once over `limit`."""
    pos, out, end = 0, 0, len(segment)
    while pos < end and out <= limit:
        header = segment[pos]
        pos += 1
        if header > 128:  # the next byte, 257 - header times
            out += 257 - header if pos < end else 0
            pos += 1
        elif header < 128:  # the next header + 1 bytes
            out += min(header + 1, end - pos)
            pos += header + 1
    return out


def _dicom_gray(array: np.ndarray) -> np.ndarray:
    """pydicom's first frame -> uint8 or uint16 gray; colour as luminance, other types rescaled."""
    height, width = array.shape[:2]
    if array.ndim == 3:  # colour DICOM: luminance
        weights = np.array([0.299, 0.587, 0.114])
        return _rescale16(height, width, lambda t, b: array[t:b, :, :3].astype(np.float64) @ weights)
    if array.dtype in (np.uint8, np.uint16):
        return array
    return _rescale16(height, width, lambda t, b: array[t:b])


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
