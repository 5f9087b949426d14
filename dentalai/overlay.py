"""Draw an analysis result on its radiograph (pure numpy/OpenCV; no service code).

Accepts the result message (`CephResult`, `PanoResult`), its proto3 JSON dict (camelCase), a
`Task` (message or dict, with `ceph`/`pano`), or a callback/REST envelope with `data`.
Coordinates are pixels of the submitted image; when the image given here has another size than
`result.image`, they are scaled so that a resized copy can still be checked by eye.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from google.protobuf.message import Message
from PIL import Image

from dentalai.task_json import findings_status, message_dict, tooth_designation

# BGR-free: every colour here is RGB because the canvas is RGB.
QUADRANT_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (230, 60, 60),  # upper right
    2: (60, 200, 80),  # upper left
    3: (70, 130, 255),  # lower left
    4: (255, 170, 30),  # lower right
}
LANDMARK_COLOUR = (255, 235, 60)
# Findings apart from the four quadrant colours: caries magenta, periapical lesions white; another
# type (a newer server than this client) gets the caries colour and its own legend entry.
FINDING_COLOURS: dict[str, tuple[int, int, int]] = {"caries": (255, 0, 255), "periapical": (255, 255, 255)}
FINDING_COLOUR = FINDING_COLOURS["caries"]
NOT_ASSESSED = (128, 128, 128)  # legend entry of a finding type not looked for on the film
# A tooth whose number is uncertain (`checkNumber`): its label ends in "?", in this colour.
CHECK_NUMBER_COLOUR = (255, 255, 0)
CHECK_NUMBER_MARK = "?"
EDENTULOUS_COLOUR = (255, 255, 255)
LOW_CONFIDENCE_COLOUR = (255, 90, 90)
# Lines of the main analyses: (label, from, to, colour, extend as a plane).
CEPH_LINES: tuple[tuple[str, str, str, tuple[int, int, int], bool], ...] = (
    ("S-N", "S", "N", (0, 220, 255), False),
    ("N-A", "N", "A", (255, 120, 200), False),
    ("N-B", "N", "B", (190, 120, 255), False),
    ("FH (Po-Or)", "Po", "Or", (120, 255, 120), True),
    ("MP (Go-Me)", "Go", "Me", (255, 160, 60), True),
)
OCCLUSAL_COLOUR = (255, 255, 255)
LOW_CONFIDENCE = 0.3


def result_dict(result: Message | Mapping[str, Any]) -> dict[str, Any]:
    """The result `data` as a proto3 JSON dict, unwrapping a Task or an envelope."""
    if isinstance(result, Message):
        result = message_dict(result)
    data = dict(result)
    # Envelope ({"code", "data"}) or callback body, then Task ({"ceph": ...} / {"pano": ...}).
    if "data" in data and isinstance(data["data"], Mapping):
        data = dict(data["data"])
    for key in ("ceph", "pano"):
        if isinstance(data.get(key), Mapping):
            return dict(data[key])
    return data


def edentulous_text(data: Mapping[str, Any]) -> str:
    """What a pano result says of its edentulous jaws ("" when none): "edentulous: upper and lower
    jaw (no teeth found)", "edentulous: upper jaw"."""
    jaws = [j for j in ("upper", "lower") if j in ((data.get("summary") or {}).get("edentulousJaws") or [])]
    if not jaws:
        return ""
    text = f"edentulous: {' and '.join(jaws)} jaw"
    return text + (" (no teeth found)" if not data.get("teeth") else "")


def check_number_teeth(data: Mapping[str, Any]) -> list[str]:
    """The designations of the teeth whose number is to be checked, in the result's numbering."""
    numbering = str(data.get("numbering", ""))
    return [tooth_designation(t, numbering) for t in data.get("teeth") or [] if t.get("checkNumber")]


def result_kind(data: Mapping[str, Any]) -> str:
    """'ceph' or 'pano' from the fields present; raises ValueError otherwise."""
    if "landmarks" in data or "measurements" in data:
        return "ceph"
    summary = data.get("summary") or {}
    if "teeth" in data or "missingTeeth" in data or "numbering" in data or "edentulousJaws" in summary:
        return "pano"
    raise ValueError("not a ceph or pano result: no landmarks or teeth")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB copy of a gray (uint8/uint16/float) or colour image, contrast-stretched."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        lo, hi = float(np.min(arr)), float(np.max(arr))
        arr = ((arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"unsupported image shape {arr.shape}")
    return np.array(arr, dtype=np.uint8, order="C", copy=True)  # never draw on the caller's array


def render(image: np.ndarray, result: Message | Mapping[str, Any]) -> np.ndarray:
    """The image (H, W[, 3]) with the result drawn on it, as RGB uint8 (H, W, 3)."""
    data = result_dict(result)
    canvas = to_rgb(image)
    style = _Style(canvas.shape[1], canvas.shape[0])
    scale = _scale(data, canvas.shape[1], canvas.shape[0])
    if result_kind(data) == "ceph":
        _draw_ceph(canvas, data, scale, style)
    else:
        _draw_pano(canvas, data, scale, style)
    return canvas


def render_png(image: np.ndarray, result: Message | Mapping[str, Any]) -> bytes:
    """`render` encoded as PNG bytes."""
    return encode_png(render(image, result))


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def load_image(path: str | Path) -> np.ndarray:
    """Pixels of a PNG/JPEG/TIFF/BMP or DICOM file for display (gray or RGB array)."""
    raw = Path(path).read_bytes()
    return decode_for_display(raw)


def decode_for_display(raw: bytes) -> np.ndarray:
    """Decode image bytes for drawing; DICOM through pydicom, with MONOCHROME1 inverted."""
    if len(raw) > 132 and raw[128:132] == b"DICM":
        import pydicom  # only needed for DICOM

        ds = pydicom.dcmread(io.BytesIO(raw))
        pixels = ds.pixel_array
        if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
            pixels = pixels[0]  # multi-frame: show the first frame
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            pixels = pixels.max() - pixels
        return np.asarray(pixels)
    with Image.open(io.BytesIO(raw)) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(img)
        return np.asarray(img.convert("L" if img.mode in ("L", "LA", "1", "P") else "RGB"))


class _Style:
    """Line widths and font sizes that stay readable from 512 px panos to 2400 px cephs."""

    def __init__(self, width: int, height: int) -> None:
        unit = max(width, height) / 1000.0
        self.thick = max(1, round(2 * unit))
        self.radius = max(2, round(5 * unit))
        self.font = max(0.35, 0.55 * unit)
        self.font_thick = max(1, round(1.5 * unit))


def _scale(data: Mapping[str, Any], width: int, height: int) -> tuple[float, float]:
    img = data.get("image") or {}
    rw, rh = float(img.get("width") or 0), float(img.get("height") or 0)
    if rw > 0 and rh > 0:
        return width / rw, height / rh
    return 1.0, 1.0


def _pt(x: float, y: float, scale: tuple[float, float]) -> tuple[int, int]:
    return round(float(x) * scale[0]), round(float(y) * scale[1])


def _label(
    canvas: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], style: _Style
) -> None:
    # A dark outline under the text keeps it legible on bright bone.
    cv2.putText(
        canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, style.font, (0, 0, 0), style.font_thick + 2, cv2.LINE_AA
    )
    cv2.putText(
        canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, style.font, colour, style.font_thick, cv2.LINE_AA
    )


def quadrant(fdi: int) -> int:
    """FDI quadrant 1-4; deciduous quadrants 5-8 map onto 1-4."""
    q = int(fdi) // 10
    return q - 4 if q > 4 else q


def _draw_pano(
    canvas: np.ndarray, data: Mapping[str, Any], scale: tuple[float, float], style: _Style
) -> None:
    for tooth in data.get("teeth") or []:
        colour = QUADRANT_COLOURS.get(quadrant(int(tooth.get("fdi") or 0)), (200, 200, 200))
        points = _polygon(tooth.get("polygon"), scale)
        if points is None:
            points = _bbox_polygon(tooth.get("bbox"), scale)
        if points is None:
            continue
        cv2.polylines(
            canvas, [points], isClosed=True, color=colour, thickness=style.thick, lineType=cv2.LINE_AA
        )
        cx, cy = points.mean(axis=0)
        text = tooth_designation(tooth, str(data.get("numbering", "")))
        if tooth.get("checkNumber"):  # "check number": the label asks, in its own colour
            text, colour = text + CHECK_NUMBER_MARK, CHECK_NUMBER_COLOUR
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, style.font, style.font_thick)
        _label(canvas, text, (int(cx - tw / 2), int(cy + th / 2)), colour, style)
    kinds: list[str] = []
    for finding in data.get("findings") or []:
        points = _polygon(finding.get("polygon"), scale)
        if points is None:
            points = _bbox_polygon(finding.get("bbox"), scale)
        if points is None:
            continue
        kind = str(finding.get("type", ""))
        cv2.polylines(canvas, [points], isClosed=True, color=FINDING_COLOURS.get(kind, FINDING_COLOUR),
                      thickness=style.thick, lineType=cv2.LINE_AA)
        if kind not in kinds:
            kinds.append(kind)
    # Lesions are small and many: their type is named once in the legend, not beside each outline.
    # A type not looked for is said so: no outline of it must not read as "none found".
    legend = [(f"Q{q}", c) for q, c in QUADRANT_COLOURS.items()] + [
        (k, FINDING_COLOURS.get(k, FINDING_COLOUR)) for k in kinds
    ] + [(f"{t.type}: not assessed", NOT_ASSESSED) for t in findings_status(data) if not t.assessed]
    checks = check_number_teeth(data)
    if checks:
        legend.append((f"{CHECK_NUMBER_MARK} check number: {', '.join(checks)}", CHECK_NUMBER_COLOUR))
    edentulous = edentulous_text(data)
    if edentulous:
        legend.append((edentulous, EDENTULOUS_COLOUR))
    _legend(canvas, legend, style)


def _polygon(raw: Any, scale: tuple[float, float]) -> np.ndarray | None:
    if not raw:
        return None
    pts = [p for p in raw if isinstance(p, Sequence) and len(p) >= 2]
    if len(pts) < 3:
        return None
    return np.array([_pt(p[0], p[1], scale) for p in pts], dtype=np.int32)


def _bbox_polygon(raw: Any, scale: tuple[float, float]) -> np.ndarray | None:
    if not raw or len(raw) != 4:
        return None
    x, y, w, h = (float(v) for v in raw)
    corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    return np.array([_pt(cx, cy, scale) for cx, cy in corners], dtype=np.int32)


def occlusal_plane(points: Mapping[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Estimated occlusal plane: through the incisal midpoint (UIT+LIT)/2, along the bisector of
    the palatal (ANS-PNS) and mandibular (Go-Me) planes; the 19 ISBI landmarks have no molar
    point, so this is the usual stand-in. Returns (point, unit direction pointing anterior)."""
    need = ("UIT", "LIT", "ANS", "PNS", "Go", "Me")
    if not all(k in points for k in need):
        return None
    p = {k: np.asarray(points[k], dtype=np.float64) for k in need}
    palatal = p["ANS"] - p["PNS"]
    mandibular = p["Me"] - p["Go"]
    if np.linalg.norm(palatal) == 0 or np.linalg.norm(mandibular) == 0:
        return None
    direction = palatal / np.linalg.norm(palatal) + mandibular / np.linalg.norm(mandibular)
    if np.linalg.norm(direction) == 0:
        return None
    return (p["UIT"] + p["LIT"]) / 2.0, direction / np.linalg.norm(direction)


def _draw_ceph(
    canvas: np.ndarray, data: Mapping[str, Any], scale: tuple[float, float], style: _Style
) -> None:
    landmarks = [lm for lm in data.get("landmarks") or [] if lm.get("id")]
    points = {str(lm["id"]): (float(lm.get("x", 0.0)), float(lm.get("y", 0.0))) for lm in landmarks}
    legend: list[tuple[str, tuple[int, int, int]]] = []
    for label, a, b, colour, plane in CEPH_LINES:
        if a in points and b in points:
            p, q = np.asarray(points[a]), np.asarray(points[b])
            if plane:  # planes are drawn a little past their points, as on a tracing
                p, q = p - 0.25 * (q - p), q + 0.25 * (q - p)
            _line(canvas, p, q, colour, scale, style)
            legend.append((label, colour))
    occ = occlusal_plane(points)
    if occ is not None:
        centre, direction = occ
        length = np.linalg.norm(np.asarray(points["ANS"]) - np.asarray(points["PNS"])) or 50.0
        _line(
            canvas,
            centre - 1.2 * length * direction,
            centre + 0.3 * length * direction,
            OCCLUSAL_COLOUR,
            scale,
            style,
        )
        legend.append(("Occlusal (est.)", OCCLUSAL_COLOUR))
    for lm in landmarks:
        x, y = _pt(lm.get("x", 0.0), lm.get("y", 0.0), scale)
        conf = lm.get("confidence")
        colour = (
            LOW_CONFIDENCE_COLOUR if conf is not None and float(conf) < LOW_CONFIDENCE else LANDMARK_COLOUR
        )
        cv2.circle(canvas, (x, y), style.radius, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), max(1, style.radius - 1), colour, -1, cv2.LINE_AA)
        _label(canvas, str(lm["id"]), (x + style.radius + 2, y - style.radius - 2), colour, style)
    _legend(canvas, legend, style)


def _line(
    canvas: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    colour: tuple[int, int, int],
    scale: tuple[float, float],
    style: _Style,
) -> None:
    cv2.line(canvas, _pt(p[0], p[1], scale), _pt(q[0], q[1], scale), colour, style.thick, cv2.LINE_AA)


def _legend(canvas: np.ndarray, items: list[tuple[str, tuple[int, int, int]]], style: _Style) -> None:
    step = int(30 * style.font) + 6
    for i, (text, colour) in enumerate(items):
        _label(canvas, text, (8, 8 + step * (i + 1)), colour, style)
