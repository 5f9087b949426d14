"""Per-tooth findings (caries, periapical lesions) on a panoramic: shared by the pipeline, training
and evaluation.

A findings model reads only the dental region: the box around the teeth that the tooth model
found, widened by a margin, at a fixed anatomical scale (the film resized so that its width is the
model's work width: WORK_WIDTH for caries, so that DC1000's 2943-px films are halved and a median
caries lesion stays about 12 px across; periapical lesions are larger and need more context, so that
model reads a coarser frame, PERIAPICAL_WORK_WIDTH). A model's per-pixel probabilities become
lesions (8-connected blobs, those within LESION_GAP_WORK work px of each other one lesion, of at
least MIN_AREA_WORK work px in all), each scored by its peak probability, outlined (by its largest
blob) in input pixels and assigned to the tooth it overlaps most, or to the nearest tooth within
ASSIGN_MARGIN_PX, or to none (FDI 0); a lesion of a tooth (`TOOTH_LESIONS`: caries, periapical)
assigned to none is not reported.
numpy and OpenCV only (no torch): training imports this module so that it crops and normalises
exactly as the service does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from google.protobuf import struct_pb2

from dentalai.contract import ERUPTED_ONLY, FINDING_TYPES, TOOTH_LESIONS, WITHIN_TOOTH
from dentalai.v1 import results_pb2, task_pb2
from engines.base import Engine
from engines.manifest import ModelManifest
from pipelines.base_pipeline import infer, pixel_spacing
from pipelines.calibration import Calibrator
from pipelines.pano.crown_band import crown_tiles
from pipelines.pano.numbering import side_quadrant, unerupted
from pipelines.pano.preprocess import normalise, to_gray_float

# Width of the whole film in the findings frame (input px per work px = image width / work width);
# a manifest may set its own (`preprocessing.work_width`).
WORK_WIDTH = 1472
# Half of a Tufts film (1615 px): a median periapical lesion (about 47 px across there) is ~23 px.
PERIAPICAL_WORK_WIDTH = 800
# The findings networks pool three times: the crop is edge-padded to a multiple of 8.
STRIDE = 8
# Margin around the union of the tooth boxes, in work px (crowns' surroundings, contacts).
ROI_MARGIN_WORK = 24
# A pixel belongs to a lesion above this probability (unless the manifest sets a type's own);
# lesions smaller than MIN_AREA_WORK work px (about 40 input px at DC1000's size) are dropped as noise:
# the smallest tenth of the labelled lesions is below it.
PIXEL_THRESHOLD = 0.5
MIN_AREA_WORK = 10
# Blobs at most this many work px apart are one lesion (its largest blob outlines it): the models
# leave specks beside a lesion's edge, each of which was shown as a finding of its own. 4 work px is
# about 8 input px on a DC1000 film (0.8 mm). On the DC1000 val films (1.2.0, the manifest's
# thresholds) gaps of 0, 2, 4, 6 and 8 px gave 17, 15, 13, 14 and 14 false findings for 48, 48, 48,
# 47 and 45 true ones: chosen on those films (models/pano-findings/MODEL_CARD.md).
LESION_GAP_WORK = 4
# Directories of the findings models under models/ (extra models of the pano pipeline).
FINDINGS_MODEL = "pano-findings"
PERIAPICAL_MODEL = "pano-periapical"
FINDINGS_MODELS = (FINDINGS_MODEL, PERIAPICAL_MODEL)
# A lesion that overlaps no tooth outline goes to the nearest tooth up to this far (input px,
# about 4 mm at 0.1 mm/px); farther ones have FDI 0 (and are dropped if they are TOOTH_LESIONS).
ASSIGN_MARGIN_PX = 40.0
# A lesion of a tooth's hard tissue (`WITHIN_TOOTH`) needs at least this share of its area inside a
# tooth outline. On the DC1000 val films every caries finding that touched a true lesion had 0.8 or
# more; 3 of the 19 that touched none lay wholly outside (bone), and on Tufts val films 21 % of the
# caries blobs did (2026-12-03).
MIN_INSIDE_TOOTH = 0.5
# What a findings model reads of the dental crop (manifest `preprocessing.region`): all of it, or
# only tiles over the crowns (pipelines/pano/crown_band.py); outside the tiles its logits are this.
REGIONS = ("teeth", "crowns")
OUTSIDE_LOGIT = -30.0


@dataclass(frozen=True)
class Roi:
    """The model input for one film and the mapping back to input pixels."""

    tensor: np.ndarray  # float32 (1, H, W), H and W multiples of STRIDE
    x0: int  # crop origin in input px
    y0: int
    scale: float  # input px per work px
    height: int  # work px before padding
    width: int

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Work-frame pixel coordinates (N, 2) -> input pixels (pixel-centre mapping of cv2.resize)."""
        return (xy + 0.5) * self.scale - 0.5 + np.array([self.x0, self.y0], np.float64)

    def to_work(self, xy: np.ndarray) -> np.ndarray:
        """Input pixels (N, 2) -> work-frame coordinates."""
        return (np.asarray(xy, np.float64) - np.array([self.x0, self.y0]) + 0.5) / self.scale - 0.5


@dataclass(frozen=True)
class Lesion:
    """One finding before numbering: outline in input px, peak probability as raw score, and the
    calibrated score (the raw score when the type has no calibration)."""

    type: str
    raw_score: float
    polygon: list[list[float]]
    bbox: list[float]
    area_px: float
    tooth: int  # index into the teeth given to `find`, -1 when none
    score: float = 0.0


def roi_box(
    boxes: Sequence[Sequence[float]], width: int, height: int, work_width: int = WORK_WIDTH
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in input px: the teeth boxes' union plus the margin, inside the image."""
    scale = width / work_width
    margin = ROI_MARGIN_WORK * scale
    if not boxes:
        return 0, 0, width, height
    b = np.asarray(boxes, np.float64)
    x0 = int(max(np.floor(b[:, 0].min() - margin), 0))
    y0 = int(max(np.floor(b[:, 1].min() - margin), 0))
    x1 = int(min(np.ceil((b[:, 0] + b[:, 2]).max() + margin), width))
    y1 = int(min(np.ceil((b[:, 1] + b[:, 3]).max() + margin), height))
    return x0, y0, x1, y1


def teeth_box(
    teeth: Sequence[np.ndarray], width: int, height: int, work_width: int = WORK_WIDTH
) -> tuple[int, int, int, int]:
    """`roi_box` of tooth outlines (input px, (N, 2) each)."""
    boxes = [[p[:, 0].min(), p[:, 1].min(), np.ptp(p[:, 0]), np.ptp(p[:, 1])] for p in teeth]
    return roi_box(boxes, width, height, work_width)


def prepare_roi(pixels: np.ndarray, box: tuple[int, int, int, int], work_width: int = WORK_WIDTH) -> Roi:
    """Crop, resize to the findings scale (INTER_AREA), normalise like the tooth model, pad."""
    gray = to_gray_float(pixels)
    scale = gray.shape[1] / work_width
    x0, y0, x1, y1 = box
    crop = gray[y0:y1, x0:x1]
    w = max(int(round((x1 - x0) / scale)), 1)
    h = max(int(round((y1 - y0) / scale)), 1)
    interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
    small = normalise(cv2.resize(crop, (w, h), interpolation=interp))
    ph, pw = -h % STRIDE, -w % STRIDE
    padded = np.pad(small, ((0, ph), (0, pw)), mode="edge")
    return Roi(tensor=padded[None], x0=x0, y0=y0, scale=scale, height=h, width=w)


def tooth_labels(roi: Roi, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """int32 (H, W) work frame: k + 1 where tooth k's outline is, 0 elsewhere."""
    labels = np.zeros((roi.height, roi.width), np.int32)
    for k, poly in enumerate(polygons):
        pts = np.round(roi.to_work(poly) * 8).astype(np.int32)
        cv2.fillPoly(labels, [pts], k + 1, shift=3)
    return labels


@dataclass(frozen=True)
class Blob:
    """One 8-connected blob of a probability map: its box in the map and its mask inside the box."""

    score: float  # peak probability
    x: int
    y: int
    mask: np.ndarray  # bool (h, w)

    @property
    def window(self) -> tuple[slice, slice]:
        h, w = self.mask.shape
        return slice(self.y, self.y + h), slice(self.x, self.x + w)


def blobs(
    prob: np.ndarray, min_area: int = MIN_AREA_WORK, pixel_threshold: float = PIXEL_THRESHOLD
) -> list[Blob]:
    """The lesions of a probability map: 8-connected blobs above `pixel_threshold`, where blobs up to
    LESION_GAP_WORK px apart are one lesion of at least `min_area` px in all, outlined by its largest
    blob and scored by its peak over all of them."""
    above = (prob > pixel_threshold).astype(np.uint8)
    n, parts, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)

    def window(k: int) -> tuple[slice, slice]:
        x, y, w, h = (int(v) for v in stats[k, :4])
        return slice(y, y + h), slice(x, x + w)

    def peak(k: int) -> float:
        part = window(k)
        return float(prob[part][parts[part] == k].max())

    # Blobs that meet once each has grown by half the gap are one lesion.
    grown = cv2.dilate(above, np.ones((LESION_GAP_WORK + 1,) * 2, np.uint8))
    _, lesion_of = cv2.connectedComponents(grown, connectivity=8)
    lesions: dict[int, list[int]] = {}
    for k in range(1, n):
        ys, xs = window(k)
        x = xs.start + int(np.argmax(parts[ys.start, xs] == k))  # a pixel of blob k on its top row
        lesions.setdefault(int(lesion_of[ys.start, x]), []).append(k)
    out = []
    for group in lesions.values():
        if int(stats[group, cv2.CC_STAT_AREA].sum()) < min_area:
            continue
        largest = max(group, key=lambda k: int(stats[k, cv2.CC_STAT_AREA]))
        ys, xs = window(largest)
        out.append(Blob(max(peak(k) for k in group), xs.start, ys.start, parts[ys, xs] == largest))
    return out


def nearest_tooth(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: label of the nearest tooth pixel and the distance to it (px); labels has teeth."""
    distance, index = cv2.distanceTransformWithLabels(
        (labels == 0).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # distanceTransformWithLabels numbers the zero pixels (the teeth); map that index to the label.
    tooth_ys, tooth_xs = np.nonzero(labels)
    lut = np.zeros(int(index.max()) + 1, np.int32)
    lut[index[tooth_ys, tooth_xs]] = labels[tooth_ys, tooth_xs]
    return lut[index], distance


def assign(blob: Blob, labels: np.ndarray, margin: float) -> int:
    """Tooth index of a blob: the tooth (label k + 1 of `labels`) it overlaps most, else the nearest
    within `margin` px, else -1."""
    hits = labels[blob.window][blob.mask]
    hits = hits[hits > 0]
    if hits.size:
        return int(np.bincount(hits).argmax()) - 1
    # Only teeth within the margin count, so the search stays in the blob's box grown by it.
    m = int(np.ceil(margin))
    h, w = blob.mask.shape
    y0, x0 = max(blob.y - m, 0), max(blob.x - m, 0)
    near = labels[y0:blob.y + h + m, x0:blob.x + w + m]
    if not near.any():
        return -1
    nearest, distance = nearest_tooth(near)
    inside = np.zeros(near.shape, bool)
    inside[blob.y - y0:blob.y - y0 + h, blob.x - x0:blob.x - x0 + w] = blob.mask
    d = np.where(inside, distance, np.inf)
    at = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(nearest[at]) - 1 if d[at] <= margin else -1


def outline(blob: Blob, roi: Roi) -> tuple[list[list[float]], list[float], float]:
    """Polygon, bbox [x, y, w, h] and area of a work-frame blob, in input px."""
    contours, _ = cv2.findContours(blob.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len)[:, 0, :].astype(np.float64)
    if len(contour) < 3:
        # A one- or two-pixel-wide blob: its pixel corners instead of the degenerate contour.
        ys, xs = np.nonzero(blob.mask)
        contour = np.array([[xs.min() - 0.5, ys.min() - 0.5], [xs.max() + 0.5, ys.min() - 0.5],
                            [xs.max() + 0.5, ys.max() + 0.5], [xs.min() - 0.5, ys.max() + 0.5]])
    pts = roi.to_input(contour + [blob.x, blob.y])
    polygon = [[round(float(x), 1), round(float(y), 1)] for x, y in pts]
    bx, by = float(pts[:, 0].min()), float(pts[:, 1].min())
    bbox = [round(bx, 1), round(by, 1), round(float(pts[:, 0].max()) - bx, 1),
            round(float(pts[:, 1].max()) - by, 1)]
    return polygon, bbox, round(float(blob.mask.sum()) * roi.scale ** 2, 1)


@dataclass(frozen=True)
class FindingType:
    """One output channel of the findings model, as its manifest describes it."""

    name: str
    channel: int
    threshold: float  # lesion score (peak probability) threshold chosen on validation
    default: bool  # reported without options.findings (reached precision >= 0.5 on validation)
    # A pixel belongs to a lesion above this probability (the manifest may choose it on validation).
    pixel_threshold: float = PIXEL_THRESHOLD
    # Films narrower than this (input px) are not assessed for the type: the model's frame upsamples
    # them and its precision on validation dropped (caries: below 0.5 under 1000 px; the model cards).
    min_film_width: int = 0
    # Raw score (peak probability) and outline area in work px -> probability of a true lesion
    # (manifest `calibration`); None: the score is the raw score.
    calibrator: Calibrator | None = None

    def calibrated(self, raw_score: float, area_work: float) -> float:
        if self.calibrator is None:
            return raw_score
        return self.calibrator(raw_score=raw_score, area_work=area_work)

    def too_narrow(self, width: int) -> str:
        """Why a film `width` px wide is not assessed for this type, or "" when it is."""
        if width >= self.min_film_width:
            return ""
        return (f"film {width} px wide: {self.name} is looked for on films at least {self.min_film_width} px "
                "wide (on narrower ones its precision on validation dropped)")


def find(
    probs: np.ndarray, roi: Roi, types: Sequence[FindingType], teeth: Sequence[np.ndarray]
) -> list[Lesion]:
    """Lesions from (len(types), H, W) probabilities (work frame, padded; channel k is types[k]) with
    a score >= their type's threshold, each assigned to one of `teeth` (outlines in input px)."""
    labels = tooth_labels(roi, teeth)
    margin = ASSIGN_MARGIN_PX / roi.scale
    found = []
    for prob, kind in zip(probs, types, strict=True):
        for blob in blobs(prob[:roi.height, :roi.width], pixel_threshold=kind.pixel_threshold):
            if blob.score < kind.threshold:
                continue
            if kind.name in WITHIN_TOOTH and (labels[blob.window][blob.mask] > 0).mean() < MIN_INSIDE_TOOTH:
                continue
            tooth = assign(blob, labels, margin)
            if tooth < 0 and kind.name in TOOTH_LESIONS:
                continue  # a tooth lesion away from every tooth: on the val films, always a false positive
            polygon, bbox, area = outline(blob, roi)
            score = round(kind.calibrated(blob.score, float(blob.mask.sum())), 4)
            found.append(Lesion(kind.name, round(blob.score, 4), polygon, bbox, area, tooth, score))
    return found


def polygon_array(polygon: struct_pb2.ListValue) -> np.ndarray:
    """(N, 2) array from a ListValue outline [[x, y], ...]."""
    return np.array([[c.number_value for c in v.list_value.values] for v in polygon.values], np.float64)


class FindingsModel:
    """One findings model's per-type settings (`findings` in its manifest.json), its frame and how to
    run it. The engine itself stays in the pipeline's `extras` (where the registry closes it and
    benches wrap it) and is passed to each call."""

    def __init__(self, manifest: ModelManifest) -> None:
        self.name = manifest.name
        self.types = [
            FindingType(str(t["type"]), int(t["channel"]), float(t["threshold"]), bool(t["default"]),
                        float(t.get("pixel_threshold", PIXEL_THRESHOLD)), int(t.get("min_film_width", 0)),
                        Calibrator.from_manifest(t.get("calibration")))
            for t in manifest.raw["findings"]
        ]
        unknown = sorted({t.name for t in self.types} - set(FINDING_TYPES))
        if unknown:
            raise ValueError(f"{manifest.name}: finding types {unknown}, the contract's {FINDING_TYPES}")
        preprocessing = manifest.raw.get("preprocessing", {})
        self.work_width = int(preprocessing.get("work_width", WORK_WIDTH))
        # "teeth": the whole dental crop; "crowns": only tiles over the crowns (crown_band).
        self.region = str(preprocessing.get("region", "teeth"))
        if self.region not in REGIONS:
            raise ValueError(f"{manifest.name}: preprocessing.region {self.region!r}, not one of {REGIONS}")
        self.input_name = manifest.inputs[0].name
        self.output_name = manifest.outputs[0].name

    def selected(self, options: task_pb2.AnalysisOptions) -> list[FindingType]:
        wanted = set(options.findings)
        return [t for t in self.types if (t.name in wanted if wanted else t.default)]

    def lesions(self, engine: Engine, pixels: np.ndarray, teeth: Sequence[np.ndarray],
                types: Sequence[FindingType], crop_teeth: Sequence[tuple[int, np.ndarray]]) -> list[Lesion]:
        """Lesions of `types` on the film around `crop_teeth` ((FDI, outline) pairs), each assigned to
        one of `teeth` (outlines in input px)."""
        if not types or not teeth or not crop_teeth:
            return []
        h, w = pixels.shape[:2]
        box = teeth_box([outline for _, outline in crop_teeth], w, h, self.work_width)
        roi = prepare_roi(pixels, box, self.work_width)
        logits = self.logits(engine, roi, crop_teeth)
        probs = 1.0 / (1.0 + np.exp(-logits[[t.channel for t in types]]))
        return find(probs, roi, types, teeth)

    def logits(self, engine: Engine, roi: Roi, crop_teeth: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
        """(C, H, W) logits over the padded crop; with region "crowns", read tile by tile and very
        negative (probability 0) outside the tiles."""
        if self.region == "teeth":
            return infer(engine, {self.input_name: roi.tensor[None]})[self.output_name][0]
        boxes = [roi.to_work(np.stack([o.min(0), o.max(0)])).ravel() for _, o in crop_teeth]
        upper = [side_quadrant(fdi) in (1, 2) for fdi, _ in crop_teeth]
        _, ph, pw = roi.tensor.shape
        out: np.ndarray | None = None
        for tile in crown_tiles(boxes, upper, ph, pw, STRIDE):
            window = roi.tensor[None, :, tile.y0:tile.y1, tile.x0:tile.x1]
            part = infer(engine, {self.input_name: window})[self.output_name][0]
            if out is None:
                out = np.full((part.shape[0], ph, pw), OUTSIDE_LOGIT, np.float32)
            keep = slice(tile.keep_x0 - tile.x0, tile.keep_x1 - tile.x0)
            out[:, tile.y0:tile.y1, tile.keep_x0:tile.keep_x1] = part[:, :, keep]
        return out if out is not None else np.full((len(self.types), ph, pw), OUTSIDE_LOGIT, np.float32)


def check_models(models: Sequence[FindingsModel]) -> None:
    """Each finding type comes from one model only."""
    names = [t.name for m in models for t in m.types]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"finding types {twice} come from more than one findings model")


def add_findings(result: results_pb2.PanoResult, models: Sequence[tuple[FindingsModel, Engine]],
                 image_spacing: float | None, pixels: np.ndarray, options: task_pb2.AnalysisOptions,
                 crop_teeth: Sequence[tuple[int, np.ndarray]] | None = None) -> None:
    """Findings of the selected types of every model into `result` (teeth already numbered), the
    types onto their teeth, and the spacing used for mm areas into result.image. The findings crop
    is around `crop_teeth` when given ((FDI, outline in input px) pairs), else the result's teeth."""
    # No default when unknown (0, ""): a panoramic's magnification varies across the film.
    mm, source = pixel_spacing(image_spacing, options)
    result.image.pixel_spacing_mm = mm
    result.image.spacing_source = source
    teeth = list(result.teeth)
    outlines = [polygon_array(t.polygon) for t in teeth]
    crop = list(crop_teeth or [(t.fdi, o) for t, o in zip(teeth, outlines, strict=True)])
    width = pixels.shape[1]
    found = []
    for model, engine in models:
        assessed = []
        for kind in model.selected(options):
            reason = kind.too_narrow(width)
            if reason:
                result.findings_not_assessed.add(type=kind.name, reason=reason)
            else:
                assessed.append(kind)
        result.findings_assessed.extend(kind.name for kind in assessed)
        found += model.lesions(engine, pixels, outlines, assessed, crop)
    in_bone = unerupted(t.fdi for t in teeth)
    rows = []
    for lesion in found:
        tooth = teeth[lesion.tooth] if lesion.tooth >= 0 else None
        if tooth is not None and lesion.type in ERUPTED_ONLY and tooth.fdi in in_bone:
            continue  # a crown still in the bone
        rows.append((tooth.fdi if tooth else 0, tooth.number if tooth else 0, lesion))
    for fdi, number, lesion in sorted(rows, key=lambda r: (r[0], r[2].type, r[2].bbox[0], r[2].bbox[1])):
        finding = result.findings.add(type=lesion.type, fdi=fdi, number=number, score=lesion.score,
                                      bbox=lesion.bbox, area_px=lesion.area_px,
                                      area_mm2=round(lesion.area_px * mm * mm, 3), raw_score=lesion.raw_score)
        finding.polygon.extend(lesion.polygon)
    for tooth in teeth:
        kinds = sorted({f.type for f in result.findings if f.fdi == tooth.fdi and f.fdi})
        tooth.findings.extend(kinds)
