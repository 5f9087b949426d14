"""Pano findings: lesion blobs, assignment to teeth, lesion metrics, the result's JSON shape."""

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from pano_helpers import FakeEngine, position, synthetic_logits

from dentalai.contract import ERUPTED_ONLY, TOOTH_LESIONS, WITHIN_TOOTH
from dentalai.task_json import findings_status
from dentalai.v1 import results_pb2, task_pb2
from engines.manifest import ModelManifest, TensorSpec
from pipelines.base_pipeline import DecodedImage
from pipelines.pano import PanoPipeline, findings
from pipelines.pano.evaluation.lesions import compare, components
from pipelines.pano.numbering import fdi_to_universal

TEETH = [11, 21, 35, 36, 46]
SPOT = (2233, 880, 80)  # x, y, radius in input px: on tooth 36 of the synthetic dentition (2943 x 1435)


class FakeFindingsEngine:
    """Caries logits where the standardised crop is very dark (the test film's radiolucent spot)."""

    runtime = "fake"

    def __init__(self, default: bool = True, types: tuple[str, ...] = ("caries",),
                 name: str = findings.FINDINGS_MODEL, work_width: int | None = None,
                 min_film_width: int = 0, region: str | None = None) -> None:
        raw: dict = {"findings": [{"type": t, "channel": k, "threshold": 0.6, "default": default,
                                   "min_film_width": min_film_width} for k, t in enumerate(types)],
                     "preprocessing": {}}
        if work_width is not None:
            raw["preprocessing"]["work_width"] = work_width
        if region is not None:
            raw["preprocessing"]["region"] = region
        self.manifest = ModelManifest(
            name=name, version="test", task_type="pano", directory=Path("."), onnx="none.onnx",
            sha256="", inputs=(TensorSpec("image", "float32", ("batch", 1, "height", "width")),),
            outputs=(TensorSpec("logits", "float32", ("batch", len(types), "height", "width")),), raw=raw,
        )
        self.seen: list[np.ndarray] = []

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["image"]
        self.seen.append(x)
        logits = np.where(x < -2.5, 3.0, -8.0).astype(np.float32)  # sigmoid(3) = 0.95
        return {"logits": np.repeat(logits, len(self.manifest.raw["findings"]), axis=1)}

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        pass


def film(spot: bool = True) -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = rng.integers(100, 150, (1435, 2943), dtype=np.uint8)
    if spot:
        cv2.circle(pixels, SPOT[:2], SPOT[2], 0, -1)
    return pixels


def run(options: task_pb2.AnalysisOptions, *engines: FakeFindingsEngine,
        spacing: float | None = None) -> results_pb2.PanoResult:
    extras = {e.manifest.name: e for e in engines or (FakeFindingsEngine(),)}
    pipeline = PanoPipeline(FakeEngine(synthetic_logits(TEETH)), extras=extras)
    return pipeline.run(DecodedImage(film(), pixel_spacing_mm=spacing), options)


def two_teeth() -> np.ndarray:
    labels = np.zeros((40, 60), np.int32)
    labels[5:35, 10:20] = 1  # tooth 0
    labels[5:35, 22:32] = 2  # tooth 1
    return labels


def blob_at(ys: slice, xs: slice) -> findings.Blob:
    return findings.Blob(0.9, xs.start, ys.start, np.ones((ys.stop - ys.start, xs.stop - xs.start), bool))


def test_a_lesion_goes_to_the_tooth_it_overlaps_most() -> None:
    # 2 columns on tooth 0, 6 on tooth 1
    assert findings.assign(blob_at(slice(10, 14), slice(18, 28)), two_teeth(), margin=5) == 1


def test_a_lesion_off_every_tooth_goes_to_the_nearest_within_the_margin() -> None:
    labels = two_teeth()
    assert findings.assign(blob_at(slice(15, 18), slice(35, 37)), labels, margin=5) == 1  # 3 px right of 1
    assert findings.assign(blob_at(slice(15, 18), slice(21, 22)), labels, margin=5) == 1  # gap, nearer 1
    assert findings.assign(blob_at(slice(36, 39), slice(8, 10)), labels, margin=5) == 0  # below-left of 0
    assert findings.assign(blob_at(slice(15, 18), slice(50, 52)), labels, margin=5) == -1  # 18 px away
    assert findings.assign(blob_at(slice(15, 18), slice(35, 37)), np.zeros_like(labels), margin=5) == -1


def test_a_tooth_lesion_near_no_tooth_is_not_reported() -> None:
    """Caries (a lesion of a tooth) 460 px from the only tooth is dropped; a type that is not a
    tooth lesion would keep it with no tooth (index -1, FDI 0)."""
    roi = findings.prepare_roi(np.full((400, 800), 120, np.uint8), (0, 0, 800, 400), 800)  # 1 px = 1 px
    tooth = np.array([[100.0, 100.0], [140.0, 100.0], [140.0, 300.0], [100.0, 300.0]])
    probs = np.zeros((1, *roi.tensor.shape[1:]), np.float32)
    probs[0, 150:170, 110:130] = 0.9  # on the tooth
    probs[0, 150:170, 600:620] = 0.9  # far from it
    assert "caries" in TOOTH_LESIONS
    caries = findings.FindingType("caries", 0, 0.5, True)
    assert [lesion.tooth for lesion in findings.find(probs, roi, [caries], [tooth])] == [0]
    bone = findings.FindingType("bone", 0, 0.5, True)
    assert sorted(lesion.tooth for lesion in findings.find(probs, roi, [bone], [tooth])) == [-1, 0]


def test_caries_mostly_outside_every_tooth_is_not_reported() -> None:
    """Caries is a lesion of the tooth's hard tissue: a blob with less than half its area inside a
    tooth outline (bone beside the root, within the assignment margin) is dropped; a periapical
    lesion, in the bone around the apex, is kept there."""
    roi = findings.prepare_roi(np.full((400, 800), 120, np.uint8), (0, 0, 800, 400), 800)
    tooth = np.array([[100.0, 100.0], [140.0, 100.0], [140.0, 300.0], [100.0, 300.0]])
    probs = np.zeros((1, *roi.tensor.shape[1:]), np.float32)
    probs[0, 150:170, 130:150] = 0.9  # half on the tooth (x 130-140 of 130-150)
    probs[0, 250:270, 137:157] = 0.9  # 3 of 20 columns on it: mostly in the bone, 17 px from it
    assert "caries" in WITHIN_TOOTH and "periapical" not in WITHIN_TOOTH
    caries = findings.FindingType("caries", 0, 0.5, True)
    (kept,) = findings.find(probs, roi, [caries], [tooth])
    assert kept.bbox[1] < 200
    periapical = findings.FindingType("periapical", 0, 0.5, True)
    assert len(findings.find(probs, roi, [periapical], [tooth])) == 2


def test_a_film_narrower_than_a_types_min_width_is_not_assessed_for_it() -> None:
    """The result says which types were looked for (an empty list then means none found) and why
    the others were not; a film at least as wide as the minimum is assessed."""
    narrow = run(task_pb2.AnalysisOptions(), FakeFindingsEngine(min_film_width=3000), periapical_engine())
    assert [f.type for f in narrow.findings] == ["periapical"]
    assert list(narrow.findings_assessed) == ["periapical"]
    (skipped,) = narrow.findings_not_assessed
    assert skipped.type == "caries" and "2943 px wide" in skipped.reason and "3000" in skipped.reason
    wide = run(task_pb2.AnalysisOptions(), FakeFindingsEngine(min_film_width=2943))
    assert list(wide.findings_assessed) == ["caries"] and not wide.findings_not_assessed
    assert [f.type for f in wide.findings] == ["caries"]
    status = findings_status(MessageToDict(narrow))
    assert [(t.type, t.text.split(":")[0], t.assessed) for t in status] == [
        ("periapical", "1 found", True), ("caries", "not assessed", False)]
    assert "none found" in findings_status({"findingsAssessed": ["caries"]})[0].text


def test_blobs_below_the_minimum_size_are_dropped_and_scored_by_their_peak() -> None:
    prob = np.zeros((50, 50), np.float32)
    prob[5:8, 5:8] = 0.9  # 9 px: below MIN_AREA_WORK (10)
    prob[20:25, 20:24] = 0.6  # 20 px
    prob[22, 22] = 0.8
    found = findings.blobs(prob)
    assert len(found) == 1
    (blob,) = found
    assert blob.score == pytest.approx(0.8) and int(blob.mask.sum()) == 20 and (blob.x, blob.y) == (20, 20)


def test_blobs_close_together_are_one_lesion_outlined_by_the_largest() -> None:
    assert findings.LESION_GAP_WORK == 4
    prob = np.zeros((60, 80), np.float32)
    prob[10:20, 10:20] = 0.6  # the lesion, 100 px
    prob[22:24, 12:15] = 0.95  # a speck 2 px below it (gap of rows 20-21): the same lesion
    prob[10:20, 24:26] = 0.7  # 20 px, 4 px to its right (columns 20-23): the same lesion too
    prob[10:20, 31:36] = 0.65  # 50 px, 5 px further (columns 26-30): a lesion of its own
    prob[40:42, 60:64] = 0.9  # 8 px on its own: below MIN_AREA_WORK
    prob[40:42, 70:72] = 0.9  # 4 px, 6 px from it: not joined, so nothing reaches 10 px
    found = sorted(findings.blobs(prob), key=lambda b: b.x)
    assert [(b.x, b.y, int(b.mask.sum())) for b in found] == [(10, 10, 100), (31, 10, 50)]
    assert found[0].score == pytest.approx(0.95)  # the speck's peak scores the lesion
    assert found[1].score == pytest.approx(0.65)
    # A speck and a 6-px piece 2 px apart: 10 px in all, so one lesion, outlined by the piece.
    prob = np.zeros((20, 20), np.float32)
    prob[5:7, 5:8] = 0.8
    prob[9:13, 5:6] = 0.7
    (blob,) = findings.blobs(prob)
    assert (blob.x, blob.y, int(blob.mask.sum()), blob.score) == (5, 5, 6, pytest.approx(0.8))


def test_lesion_metrics_on_hand_made_masks() -> None:
    gt = np.zeros((100, 100), bool)
    gt[10:20, 10:20] = True  # A, 100 px
    gt[50:60, 50:60] = True  # B, 100 px
    gt[80:82, 80:82] = True  # C, 4 px
    pred = np.zeros((100, 100), np.int32)
    pred[10:20, 15:25] = 1  # on A: IoU 50 / 150 = 0.33 -> match
    pred[50:52, 50:52] = 2  # inside B: IoU 4 / 100 = 0.04 -> no match
    pred[30:35, 30:35] = 3  # nowhere
    counts = compare(pred, 3, gt)
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 2)
    assert counts.precision == pytest.approx(1 / 3) and counts.recall == pytest.approx(1 / 3)
    # Pixel Dice: 50 + 4 px overlap; 100 + 4 + 25 predicted; 204 true.
    assert counts.dice == pytest.approx(2 * 54 / (129 + 204))
    assert components(gt)[0] == 3
    assert sorted(counts.sizes) == [(4, False), (100, False), (100, True)]
    by_size = counts.recall_by_size()
    assert by_size["0-40"] == {"lesions": 1, "recall": 0.0}
    assert by_size["100-200"] == {"lesions": 2, "recall": 0.5}


def test_lesions_touching_diagonally_are_one_lesion() -> None:
    gt = np.zeros((10, 10), bool)
    gt[2, 2] = gt[3, 3] = True
    assert components(gt)[0] == 1


def test_one_prediction_matches_at_most_one_lesion() -> None:
    gt = np.zeros((20, 40), bool)
    gt[5:10, 5:10] = True
    gt[5:10, 12:17] = True
    pred = np.zeros((20, 40), np.int32)
    pred[5:10, 5:17] = 1  # covers both: IoU 25/60 with each
    counts = compare(pred, 1, gt)
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 1)


def test_result_json_shape_universal_numbers_and_mm_areas() -> None:
    result = run(task_pb2.AnalysisOptions(tooth_numbering=results_pb2.UNIVERSAL, pixel_spacing_mm=0.1))
    data = MessageToDict(result)
    assert data["image"]["pixelSpacingMm"] == 0.1 and data["image"]["spacingSource"] == "request"
    (finding,) = data["findings"]
    assert set(finding) == {"type", "fdi", "number", "score", "polygon", "bbox", "areaPx", "areaMm2",
                            "rawScore"}
    assert finding["type"] == "caries" and finding["fdi"] == 36 and finding["number"] == fdi_to_universal(36)
    # No calibration in this model's manifest: the score is the raw score (the peak probability).
    assert finding["score"] == finding["rawScore"] == pytest.approx(0.9526, abs=1e-3)
    assert all(len(p) == 2 for p in finding["polygon"]) and len(finding["polygon"]) >= 8
    x, y, w, h = finding["bbox"]
    cx, cy, r = SPOT
    assert abs(x + w / 2 - cx) < 6 and abs(y + h / 2 - cy) < 6 and abs(w - 2 * r) < 8
    assert finding["areaPx"] == pytest.approx(np.pi * r * r, rel=0.08)
    assert finding["areaMm2"] == pytest.approx(finding["areaPx"] * 0.01, rel=1e-3)
    teeth = {t["fdi"]: t for t in data["teeth"]}
    assert teeth[36]["findings"] == ["caries"]
    assert all("findings" not in t for f, t in teeth.items() if f != 36)


def test_spacing_from_dicom_and_unknown() -> None:
    result = run(task_pb2.AnalysisOptions(), spacing=0.12)
    assert result.image.spacing_source == "dicom"
    assert result.findings[0].area_mm2 == pytest.approx(result.findings[0].area_px * 0.0144, rel=1e-3)
    result = run(task_pb2.AnalysisOptions())
    assert result.image.pixel_spacing_mm == 0 and result.image.spacing_source == ""
    assert result.findings[0].area_mm2 == 0


def test_a_type_off_by_default_is_reported_only_when_asked() -> None:
    engine = FakeFindingsEngine(default=False)
    assert len(run(task_pb2.AnalysisOptions(), engine).findings) == 0
    assert len(run(task_pb2.AnalysisOptions(findings=["caries"]), engine).findings) == 1


def test_the_findings_model_reads_only_the_dental_crop() -> None:
    engine = FakeFindingsEngine()
    run(task_pb2.AnalysisOptions(), engine)
    (x,) = engine.seen
    _, _, h, w = x.shape
    assert h % findings.STRIDE == 0 and w % findings.STRIDE == 0
    assert w < 0.8 * findings.WORK_WIDTH and h < 0.6 * 1435 / 2


def test_a_crown_model_reads_tiles_over_the_crowns_only() -> None:
    whole, tiled = FakeFindingsEngine(), FakeFindingsEngine(region="crowns")
    a, b = run(task_pb2.AnalysisOptions(), whole), run(task_pb2.AnalysisOptions(), tiled)
    (crop,) = whole.seen
    assert len(tiled.seen) > 1
    assert sum(x.shape[2] * x.shape[3] for x in tiled.seen) < 0.8 * crop.shape[2] * crop.shape[3]
    # The spot reaches from tooth 36's crown into its root: found on 36 either way, but the crown
    # model outlines only the part within its tiles.
    assert [f.fdi for f in a.findings] == [f.fdi for f in b.findings] == [36]
    assert b.findings[0].area_px < a.findings[0].area_px


def test_crown_tiles_match_the_whole_crop_where_they_read() -> None:
    """A pointwise 'model' (logit = input) read tile by tile equals the whole crop inside the tiles'
    kept columns, and is very negative (probability 0) outside every tile."""

    class Identity(FakeFindingsEngine):
        def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"logits": inputs["image"].copy()}

    model = findings.FindingsModel(FakeFindingsEngine(region="crowns").manifest)
    pixels = film()
    teeth = [(36, np.array([[2100.0, 790.0], [2360.0, 790.0], [2360.0, 1010.0], [2100.0, 1010.0]])),
             (26, np.array([[2100.0, 420.0], [2360.0, 420.0], [2360.0, 700.0], [2100.0, 700.0]]))]
    box = findings.teeth_box([o for _, o in teeth], pixels.shape[1], pixels.shape[0])
    roi = findings.prepare_roi(pixels, box)
    logits = model.logits(Identity(), roi, teeth)[0]
    inside = logits > findings.OUTSIDE_LOGIT
    assert np.array_equal(logits[inside], roi.tensor[0][inside])
    rows = np.nonzero(inside.any(1))[0]
    top, bottom = roi.to_work(np.array([[0.0, 700.0], [0.0, 790.0]]))[:, 1]
    # The crowns (26's bottom, 36's top) and the gap between them are read; the roots are not.
    assert rows.min() < top - 0.4 * 280 / roi.scale + 1 and rows.max() > bottom
    apex_26, apex_36 = roi.to_work(np.array([[0.0, 420.0], [0.0, 1010.0]]))[:, 1]
    assert rows.min() > apex_26 + 8 and rows.max() < apex_36 - 8


def test_a_model_whose_types_differ_from_the_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="finding types"):
        findings.FindingsModel(FakeFindingsEngine(types=("caries", "cyst")).manifest)


def periapical_engine(default: bool = True) -> FakeFindingsEngine:
    return FakeFindingsEngine(default, ("periapical",), findings.PERIAPICAL_MODEL,
                              findings.PERIAPICAL_WORK_WIDTH)


def test_each_findings_model_reads_its_own_frame_and_both_reach_the_result() -> None:
    caries, periapical = FakeFindingsEngine(), periapical_engine()
    result = run(task_pb2.AnalysisOptions(), caries, periapical)
    (small,), (large,) = periapical.seen, caries.seen
    # The periapical frame is the film at 800 px wide, the caries frame at 1472: about 800 / 1472
    # (a little more: the 24-work-px margin is wider in input px in the coarser frame).
    ratio = findings.PERIAPICAL_WORK_WIDTH / findings.WORK_WIDTH
    assert ratio < small.shape[3] / large.shape[3] < ratio + 0.04
    assert [f.type for f in result.findings] == ["caries", "periapical"]
    a, b = (np.array(f.bbox) for f in result.findings)
    assert np.abs(a - b).max() < 8  # the same spot, outlined in input px from either frame
    assert list(next(t for t in result.teeth if t.fdi == 36).findings) == ["caries", "periapical"]
    only = run(task_pb2.AnalysisOptions(findings=["periapical"]), FakeFindingsEngine(), periapical_engine())
    assert [f.type for f in only.findings] == ["periapical"]


def test_a_type_from_two_models_is_refused() -> None:
    twice = FakeFindingsEngine(types=("caries",), name=findings.PERIAPICAL_MODEL)
    with pytest.raises(ValueError, match="more than one findings model"):
        run(task_pb2.AnalysisOptions(), FakeFindingsEngine(), twice)


def test_threshold_choice_best_recall_at_precision_half_else_off() -> None:
    from pipelines.pano.evaluation.eval_findings import choose

    def row(t: float, p: float, r: float) -> dict:
        return {"threshold": t, "precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9),
                "tp": int(100 * r)}

    rows = [row(0.5, 0.3, 0.6), row(0.7, 0.5, 0.4), row(0.8, 0.6, 0.4), row(0.9, 0.8, 0.2)]
    assert choose(rows) == (rows[2], True)  # recall tie: the more precise
    rows = [row(0.5, 0.3, 0.6), row(0.7, 0.45, 0.4), row(0.9, 0.49, 0.1)]
    assert choose(rows) == (rows[1], False)


def test_caries_on_a_crown_still_under_its_primary_predecessor_is_not_reported() -> None:
    """Mixed dentition: 35 in the bone under 75 has no caries, whatever the model marks on it; the
    same spot is reported on 35 when no 75 is on the film, and caries on 75 itself is kept."""
    x35, y35 = (int(round(c * s)) for c, s in zip(position(35), (2943 / 512, 1435 / 256), strict=True))
    x75, y75 = (int(round(c * s)) for c, s in zip(position(75), (2943 / 512, 1435 / 256), strict=True))
    pixels = film(spot=False)
    # Dark enough to stay dark through the crop's percentile window: together 2 % of the crop.
    for x, y in ((x35, y35), (x75, y75)):
        cv2.rectangle(pixels, (x - 40, y - 100), (x + 40, y + 100), 0, -1)

    def caries_on(teeth: list[int]) -> list[int]:
        pipeline = PanoPipeline(FakeEngine(synthetic_logits(teeth)),
                                extras={findings.FINDINGS_MODEL: FakeFindingsEngine()})
        result = pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
        return sorted(f.fdi for f in result.findings)

    assert "caries" in ERUPTED_ONLY
    assert caries_on(TEETH + [75]) == [75]
    assert caries_on(TEETH) == [35]


def test_finding_scores_are_calibrated_and_the_threshold_stays_on_the_raw_score() -> None:
    engine = FakeFindingsEngine()
    # A calibration that maps the spot's peak probability (0.95) to about 0.12, far under the type's
    # threshold (0.6): the finding is still shown, since the threshold applies to the raw score.
    engine.manifest.raw["findings"][0]["calibration"] = {
        "method": "platt", "features": [{"name": "raw_score", "transform": "logit"}], "coef": [1.0],
        "intercept": -5.0}
    (finding,) = run(task_pb2.AnalysisOptions(), engine).findings
    assert finding.raw_score == pytest.approx(0.9526, abs=1e-3)
    assert finding.score == pytest.approx(1 / (1 + np.exp(5.0 - np.log(0.9526 / 0.0474))), abs=2e-3)
    # A lesion area feature is read in work px (the largest blob's, as the outline is drawn).
    engine.manifest.raw["findings"][0]["calibration"] = {
        "method": "platt", "features": [{"name": "area_work", "transform": "log"}], "coef": [1.0],
        "intercept": 0.0}
    (finding,) = run(task_pb2.AnalysisOptions(), engine).findings
    scale = 2943 / findings.WORK_WIDTH
    area_work = finding.area_px / scale**2
    assert finding.score == pytest.approx(area_work / (1 + area_work), abs=2e-3)
