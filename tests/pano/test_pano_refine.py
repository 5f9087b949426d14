"""Per-tooth refinement (pipelines/pano/refine.py): crops and outlines land where the teeth are on
the film, a failed refinement keeps the whole-film outline, and the shipped model improves the
outlines of a validation film."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest
from pano_helpers import DATA, FakeEngine, position, synthetic_logits

from dentalai.errors import ErrorCode
from dentalai.v1 import task_pb2
from engines.manifest import ModelManifest, TensorSpec
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.pano import PanoPipeline, preprocess, refine
from pipelines.pano.evaluation.eval_pano import polygon_mask, polygon_points
from pipelines.pano.outline import finer_grid

TEETH = [11, 21, 36, 46]
FILM = (1435, 2943)  # a DC1000 film: the frame halves it
ROOT = Path(__file__).resolve().parents[2]
Rect = tuple[int, int, int, int]


class FakeRefineEngine:
    """A 'tooth' wherever the standardised film crop is bright; records the batches it got."""

    runtime = "fake"

    def __init__(self, max_batch: int = 3, fail: bool = False, empty: bool = False) -> None:
        self.manifest = ModelManifest(
            name=refine.REFINE_MODEL, version="test", task_type="pano", directory=Path("."),
            onnx="none.onnx", sha256="", inputs=(TensorSpec("crops", "float32", ("batch", 2, 160, 96)),),
            outputs=(TensorSpec("logits", "float32", ("batch", 1, 160, 96)),), batch_max=max_batch,
        )
        self.fail, self.empty = fail, empty
        self.seen: list[np.ndarray] = []

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.fail:
            raise RuntimeError("device lost")
        x = inputs["crops"]
        self.seen.append(x)
        bright = np.where(x[:, :1] > 1.0, 5.0, -5.0).astype(np.float32)
        return {"logits": np.full_like(bright, -5.0) if self.empty else bright}

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        pass


def film_with_narrow_teeth() -> tuple[np.ndarray, dict[int, Rect]]:
    """Bright teeth 60 px wide where the fake whole-film model says 92 (16 model px)."""
    h, w = FILM
    sx, sy = w / 512, h / 256
    pixels = np.random.default_rng(1).integers(90, 110, FILM, dtype=np.uint8)
    rects = {}
    for fdi in TEETH:
        x, y = position(fdi)
        cx, top, bottom = (x + 0.5) * sx, (y - 20) * sy, (y + 20) * sy
        rect = (int(cx - 30), int(top), int(cx + 30), int(bottom))
        cv2.rectangle(pixels, rect[:2], (rect[2] - 1, rect[3] - 1), 230, -1)
        rects[fdi] = rect
    return pixels, rects


def run(refiner: FakeRefineEngine | None) -> tuple[dict[int, np.ndarray], dict[int, Rect]]:
    pixels, rects = film_with_narrow_teeth()
    extras = {refine.REFINE_MODEL: refiner} if refiner else {}
    pipeline = PanoPipeline(FakeEngine(synthetic_logits(TEETH)), extras=extras)
    result = pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
    return {t.fdi: polygon_points(t) for t in result.teeth}, rects


def test_refined_outlines_follow_the_film_not_the_coarse_mask() -> None:
    engine = FakeRefineEngine(max_batch=3)
    outlines, rects = run(engine)
    coarse, _ = run(None)
    assert sorted(outlines) == TEETH
    for fdi, (x0, y0, x1, y1) in rects.items():
        pts = outlines[fdi]
        # Within two input px (a crop pixel is about 1.4 input px here) of the film's tooth.
        assert abs(pts[:, 0].min() - x0) <= 2.5 and abs(pts[:, 0].max() - (x1 - 1)) <= 2.5
        assert abs(pts[:, 1].min() - y0) <= 2.5 and abs(pts[:, 1].max() - (y1 - 1)) <= 2.5
        assert np.ptp(coarse[fdi][:, 0]) > 80  # the whole-film outline is the wider 92 px
    # Four teeth in batches of at most three, each crop with the tooth's probability in channel 1.
    assert [len(b) for b in engine.seen] == [3, 1]
    assert all(b[:, 1].max() > 0.9 for b in engine.seen)


def test_a_refinement_that_finds_nothing_keeps_the_whole_film_outline() -> None:
    outlines, _ = run(FakeRefineEngine(empty=True))
    coarse, _ = run(None)
    assert sorted(outlines) == sorted(coarse)
    for fdi in coarse:
        np.testing.assert_array_equal(outlines[fdi], coarse[fdi])


def test_the_findings_crop_follows_the_whole_film_outlines() -> None:
    """The findings models were validated on crops around the whole-film outlines: refining the
    outlines must not move their crop (findings are still assigned to the refined teeth)."""
    from test_pano_findings import FakeFindingsEngine

    pixels, _ = film_with_narrow_teeth()
    crops = []
    for extras in ({}, {refine.REFINE_MODEL: FakeRefineEngine()}):
        caries = FakeFindingsEngine()
        extras = {**extras, caries.manifest.name: caries}
        pipeline = PanoPipeline(FakeEngine(synthetic_logits(TEETH)), extras=extras)
        pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
        crops.append(caries.seen[0])
    np.testing.assert_array_equal(crops[0], crops[1])


def test_a_failing_refinement_model_is_an_inference_error() -> None:
    with pytest.raises(PipelineError) as err:
        run(FakeRefineEngine(fail=True))
    assert err.value.code == ErrorCode.INFERENCE_FAILED


def test_crop_grid_maps_back_to_the_input() -> None:
    """A crop pixel centre maps to the frame and back to the input with the resize's own mapping."""
    frame = refine.make_frame(np.zeros(FILM, np.uint8))
    assert frame.film.shape[1] == refine.FRAME_WIDTH
    box = refine.frame_box([1000.0, 400.0, 92.0, 224.0], frame)
    matrix = refine.crop_matrix(box, 96, 160)
    to_input = refine.crop_to_input(matrix, frame)
    # The crop spans the box grown by GROW_X / GROW_Y, half a frame pixel up and left (as trained).
    left = to_input[0, 0] * -0.5 + to_input[0, 2]
    right = to_input[0, 0] * 95.5 + to_input[0, 2]
    half = 0.5 * frame.scale_x
    assert left == pytest.approx(1000 - refine.GROW_X * 92 - half, abs=0.01)
    assert right == pytest.approx(1092 + refine.GROW_X * 92 - half, abs=0.01)
    top = to_input[1, 1] * -0.5 + to_input[1, 2]
    assert top == pytest.approx(400 - refine.GROW_Y * 224 - 0.5 * frame.scale_y, abs=0.01)


def test_the_shipped_refinement_improves_tufts_validation_films() -> None:
    """Mean Dice per tooth against the expert outlines on four val films, with and without it; its
    int8 copy (what ONNX Runtime runs on CPU) draws them as well as the fp32 file."""
    tufts = DATA / "pano" / "tufts"
    if not tufts.exists():
        pytest.skip(f"shared data absent: {tufts}")
    from engines.onnxruntime_engine import OnnxRuntimeEngine

    coco = json.loads((tufts / "annotations.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    truth_polygons: dict[int, dict[int, np.ndarray]] = {}
    for a in coco["annotations"]:
        points = np.asarray(a["segmentation"][0], np.float32).reshape(-1, 2)
        truth_polygons.setdefault(a["image_id"], {})[a["category_id"]] = points
    val = json.loads((ROOT / "training" / "pano" / "split_tufts.json").read_text())["val"]
    films = [i for i in val if len(truth_polygons.get(i, {})) >= 20][:4]
    teeth = OnnxRuntimeEngine(ModelManifest.load(ROOT / "models" / "pano-teeth"), intra_threads=1)
    manifest = ModelManifest.load(ROOT / "models" / refine.REFINE_MODEL)
    manifest.verify_checksum()
    refiner = OnnxRuntimeEngine(manifest, intra_threads=1)

    vertices: list[int] = []

    def dices(extras: dict) -> list[float]:
        pipeline = PanoPipeline(teeth, extras=extras)
        out = []
        for image_id in films:
            pixels = cv2.imread(str(tufts / "images" / files[image_id]), cv2.IMREAD_GRAYSCALE)
            h, w = pixels.shape
            truth = {f: polygon_mask(p, h, w) for f, p in truth_polygons[image_id].items()}
            for t in pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions()).teeth:
                if extras:
                    vertices.append(len(t.polygon.values))
                if t.fdi in truth:
                    mask = polygon_mask(polygon_points(t), h, w)
                    out.append(2 * (mask & truth[t.fdi]).sum() / (mask.sum() + truth[t.fdi].sum()))
        return out

    refined, whole_film = dices({refine.REFINE_MODEL: refiner}), dices({})
    assert len(refined) == len(whole_film) >= 80
    # About +0.01 on these films (pano-teeth-refine's card has the whole validation split).
    assert np.mean(refined) > np.mean(whole_film) + 0.005
    assert refiner.precision == "int8"
    fp32 = dices({refine.REFINE_MODEL: OnnxRuntimeEngine(manifest, intra_threads=1, precision="fp32")})
    assert abs(np.mean(refined) - np.mean(fp32)) < 0.002
    # Simplified to half an input pixel: about 36 vertices a tooth, not one per step of the fine grid
    # (about 265 on these films).
    assert 12 <= np.median(vertices) <= 80


def test_the_outline_grid_is_the_crop_grid_made_finer() -> None:
    """Pixel k of the up-sampled grid is centred where cv2.resize puts it: at crop coordinate
    (k + 0.5) / factor - 0.5, so a mask outlined there is not shifted against the crop."""
    frame = refine.make_frame(np.zeros(FILM, np.uint8))
    matrix = refine.crop_matrix(refine.frame_box([1000.0, 400.0, 92.0, 224.0], frame), 96, 160)
    factor = refine.OUTLINE_UPSAMPLE
    fine = finer_grid(matrix, factor, factor)
    for k in (0, 7, 300):
        crop = (k + 0.5) / factor - 0.5
        assert fine[0, 0] * k + fine[0, 2] == pytest.approx(matrix[0, 0] * crop + matrix[0, 2])
        assert fine[1, 1] * k + fine[1, 2] == pytest.approx(matrix[1, 1] * crop + matrix[1, 2])
    # The fine grid's outermost pixel edges are the crop's: the same extent of the frame.
    assert fine[0, 0] * (96 * factor - 0.5) + fine[0, 2] == pytest.approx(matrix[0, 0] * 95.5 + matrix[0, 2])


def test_a_refined_outline_is_not_drawn_inside_its_mask() -> None:
    """The fake refiner's mask is the bright rectangle. An outline through the centres of the crop
    mask's boundary pixels would lie half a crop pixel (1.8 film px here) inside it on every side,
    on top of the crop's own blur at the edges (measured: 1.5 px inside on average); read on the
    up-sampled grid it is 0.9 px inside."""
    shapes, rects = run(FakeRefineEngine())
    insets = []
    for fdi, (x0, y0, x1, y1) in rects.items():
        xs, ys = shapes[fdi][:, 0], shapes[fdi][:, 1]
        # Pixel edges of the drawn rectangle (rows and columns x0 .. x1 - 1).
        insets += [xs.min() - (x0 - 0.5), (x1 - 0.5) - xs.max(), ys.min() - (y0 - 0.5), (y1 - 0.5) - ys.max()]
    assert min(insets) > -0.5  # never outside the rectangle
    assert np.mean(insets) < 1.2


def test_the_fine_mask_of_a_window_is_the_fine_mask_of_the_crop() -> None:
    """Up-sampling only the mask's window (grown by a pixel) gives the pixels that up-sampling the
    whole crop gives, at the window's place."""
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:160, 0:96].astype(np.float32)
    tooth = 3.0 - ((xs - 55) / 18) ** 2 - ((ys - 70) / 45) ** 2  # a tooth-shaped blob, not centred
    logits = tooth + cv2.GaussianBlur(rng.normal(0.0, 4.0, (160, 96)).astype(np.float32), (0, 0), 2)
    mask = logits > 0.0
    assert 0.1 < mask.mean() < 0.6
    factor = refine.OUTLINE_UPSAMPLE
    fine, (x0, y0) = refine.fine_mask(logits, mask, factor)
    whole = cv2.resize(logits, (96 * factor, 160 * factor), interpolation=cv2.INTER_LINEAR) > 0.0
    h, w = fine.shape
    window = whole[y0 * factor : y0 * factor + h, x0 * factor : x0 * factor + w]
    assert np.array_equal(fine.astype(bool), window)
    assert whole.sum() == fine.sum()  # nothing of the mask lies outside the window


def test_the_film_is_made_float_once_per_run() -> None:
    """The tooth model and the refinement (and the findings crop) share one float copy of the film:
    a 2943 x 1435 conversion costs 10-40 ms, and each used to make its own."""
    gray = np.zeros((4, 4), np.float32)
    assert preprocess.to_gray_float(gray) is gray
    copies: list[np.dtype] = []
    original = np.ndarray.astype

    class Counting(np.ndarray):
        def astype(self, dtype, *args, **kwargs):  # type: ignore[no-untyped-def]
            copies.append(np.dtype(dtype))
            return original(np.asarray(self), dtype, *args, **kwargs)

    pixels = film_with_narrow_teeth()[0].view(Counting)
    extras = {refine.REFINE_MODEL: FakeRefineEngine()}
    result = PanoPipeline(FakeEngine(synthetic_logits(TEETH)), extras=extras).run(
        DecodedImage(pixels), task_pb2.AnalysisOptions())
    assert len(result.teeth) == len(TEETH)
    assert copies.count(np.dtype(np.float32)) == 1
