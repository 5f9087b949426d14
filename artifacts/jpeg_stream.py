"""A JPEG upload kept as it is in image.dcm (DICOM JPEG Baseline, 1.2.840.10008.1.2.4.50): the
capture then costs no encoding and no more bytes than the upload, where a lossless re-encoding of
the decoded pixels took 2-3.5x the upload's size (a DC1000 pano: 0.54 MB as JPEG, 1.13 MB as
JPEG-LS; a Tufts pano 0.15 MB, 0.52 MB).

Only streams a DICOM reader of that transfer syntax decodes to the picture the analysis saw, at
its size: baseline (SOF0), 8-bit, one component (MONOCHROME2: the gray image Pillow decoded) or
three in YCbCr (YBR_FULL_422 when the chroma is subsampled, as highdicom and most writers label a
4:2:0 stream too, else YBR_FULL; the analysis saw its luminance). Pillow never applies an EXIF
orientation, so the geometry is the stream's. The APPn and COM segments are left out: they may
carry a camera's or a person's name, dates, places (EXIF, XMP, comments), and a DICOM reader needs
none of them (the colour transform is the Photometric Interpretation's to say). What follows the
end of the image is left out too. A stream coded in RGB (Adobe APP14 transform 0, or components
named R, G, B) is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

SOS, SOF0, APP14, COM = 0xDA, 0xC0, 0xEE, 0xFE
# Start-of-frame markers other than SOF0 (DHT C4, JPG C8 and DAC CC share the range).
OTHER_SOF = frozenset(range(0xC1, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class Stream:
    data: bytes  # SOI to EOI, without APPn and COM segments
    photometric: str  # MONOCHROME2, YBR_FULL_422 or YBR_FULL
    samples: int  # 1 or 3


def baseline(raw: bytes, shape: tuple[int, ...]) -> Stream | None:
    """The stream of a baseline 8-bit JPEG of `shape` (rows, columns), gray or YCbCr, without its
    APPn and COM segments, or None for anything else."""
    if not raw.startswith(b"\xff\xd8") or len(shape) != 2:
        return None
    kept = [raw[:2]]
    frame: tuple[int, int, int, bytes] | None = None
    rgb = False
    at = 2
    while at + 4 <= len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        length = int.from_bytes(raw[at + 2 : at + 4], "big")
        end = at + 2 + length
        if length < 2 or end > len(raw):
            return None
        if marker == SOS:
            # Entropy-coded data stuffs every 0xFF as FF 00 (or a restart marker FF D0-D7), so the
            # first FF D9 after the scan header is the end of the image.
            stop = raw.find(b"\xff\xd9", end)
            if stop < 0:
                return None
            kept.append(raw[at : stop + 2])
            break
        if marker in OTHER_SOF:
            return None  # progressive, lossless, extended, arithmetic: not JPEG Baseline
        if marker == SOF0:
            if length < 8:
                return None
            rows = int.from_bytes(raw[at + 5 : at + 7], "big")
            columns = int.from_bytes(raw[at + 7 : at + 9], "big")
            # Per component: id, sampling factors (H << 4 | V), quantization table.
            frame = (raw[at + 4], rows, columns, raw[at + 10 : end])
        if marker == APP14 and raw[at + 4 : at + 9] == b"Adobe" and length >= 14:
            rgb = raw[at + 15] == 0  # transform flag 0: the components are R, G, B
        if not (0xE0 <= marker <= 0xEF or marker == COM):
            kept.append(raw[at:end])
        at = end
    else:
        return None
    if frame is None or frame[:3] != (8, shape[0], shape[1]):
        return None
    components = frame[3]
    if len(components) == 3:
        return Stream(b"".join(kept), "MONOCHROME2", 1)
    if len(components) != 9 or rgb or components[0::3] == b"RGB":
        return None
    luma, cb, cr = components[1::3]
    photometric = "YBR_FULL" if luma == cb == cr else "YBR_FULL_422"
    return Stream(b"".join(kept), photometric, 3)
