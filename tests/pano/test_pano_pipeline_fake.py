"""The pipeline's own logic with a fake engine: checks, errors, numbering systems, coordinates."""

import numpy as np
import pytest
from pano_helpers import FakeEngine, position, synthetic_logits

from dentalai.errors import ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.pano import PanoPipeline
from pipelines.pano.numbering import PERMANENT_FDI, fdi_to_universal

TEETH = [11, 12, 13, 21, 22, 36, 46, 47]


def pano_like(width: int = 2000, height: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (height, width), dtype=np.uint8)


# A child's mixed dentition: permanent incisors and first molars, primary canines and molars.
MIXED = [11, 21, 31, 41, 16, 26, 36, 46, 53, 54, 55, 63, 64, 65, 73, 74, 75, 83, 84, 85]


def run(
    pixels: np.ndarray, numbering: int = results_pb2.FDI, teeth: list[int] = TEETH
) -> results_pb2.PanoResult:
    pipeline = PanoPipeline(FakeEngine(synthetic_logits(teeth)))
    return pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions(tooth_numbering=numbering))


def test_fdi_result() -> None:
    result = run(pano_like())
    assert result.numbering == results_pb2.FDI
    assert [t.fdi for t in result.teeth] == sorted(TEETH)
    assert [t.number for t in result.teeth] == sorted(TEETH)
    assert result.summary.tooth_count == len(TEETH)
    assert list(result.missing_teeth) == [f for f in PERMANENT_FDI if f not in TEETH]
    assert result.image.width == 2000 and result.image.height == 1000


def test_universal_result() -> None:
    result = run(pano_like(), numbering=results_pb2.UNIVERSAL)
    assert result.numbering == results_pb2.UNIVERSAL
    assert {(t.fdi, t.number) for t in result.teeth} == {(f, fdi_to_universal(f)) for f in TEETH}
    assert list(result.missing_teeth) == sorted(fdi_to_universal(f) for f in PERMANENT_FDI if f not in TEETH)
    assert {t.universal_label for t in result.teeth} == {str(fdi_to_universal(f)) for f in TEETH}


def test_mixed_dentition_fdi() -> None:
    result = run(pano_like(), teeth=MIXED)
    assert [t.fdi for t in result.teeth] == sorted(MIXED)
    assert [t.number for t in result.teeth] == sorted(MIXED)
    # Positions 12-15 ... are held by primary teeth or not yet formed: only 12, 22, 32, 42 (neither
    # the lateral incisor nor a primary predecessor found) and the second molars are missing.
    assert list(result.missing_teeth) == [12, 17, 22, 27, 32, 37, 42, 47]


def test_mixed_dentition_universal_letters() -> None:
    result = run(pano_like(), numbering=results_pb2.UNIVERSAL, teeth=MIXED)
    by_fdi = {t.fdi: t for t in result.teeth}
    assert [by_fdi[f].universal_label for f in (55, 54, 53, 63, 64, 65, 75, 74, 73, 83, 84, 85)] == list(
        "ABCHIJKLMRST")
    assert all(by_fdi[f].number == 0 for f in MIXED if f > 50)
    assert by_fdi[16].number == 3 and by_fdi[16].universal_label == "3"
    assert list(result.missing_teeth) == [2, 7, 10, 15, 18, 23, 26, 31]


def test_model_without_primary_channels_still_runs() -> None:
    # pano-teeth 1.x: 33 channels (background + permanent teeth), the first ones of CLASS_FDI.
    engine = FakeEngine(synthetic_logits(TEETH)[:33])
    result = PanoPipeline(engine).run(DecodedImage(pano_like()), task_pb2.AnalysisOptions())
    assert [t.fdi for t in result.teeth] == sorted(TEETH)


def test_outlines_are_in_input_coordinates() -> None:
    width, height = 2943, 1435
    result = run(pano_like(width, height))
    sx, sy = width / 512, height / 256
    for tooth in result.teeth:
        x, y, w, h = tooth.bbox
        mx, my = position(tooth.fdi)
        # The synthetic tooth is a 16 x 40 model-pixel rectangle centred near its position.
        assert abs((x + w / 2) - (mx + 0.5) * sx) < 2 * sx
        assert abs((y + h / 2) - (my + 0.5) * sy) < 2 * sy
        assert w == pytest.approx(16 * sx, rel=0.25) and h == pytest.approx(40 * sy, rel=0.25)
        assert tooth.area_px == pytest.approx(16 * 40 * sx * sy, rel=0.25)
        pts = [[c.number_value for c in p.list_value.values] for p in tooth.polygon.values]
        assert len(pts) >= 4 and all(len(p) == 2 for p in pts)


@pytest.mark.parametrize(
    ("shape", "why"),
    [((300, 150), "too small"), ((1935, 2400), "aspect"), ((640, 800), "aspect"), ((3000, 800), "aspect")],
)
def test_wrong_kind_or_size_is_11003(shape: tuple[int, int], why: str) -> None:
    width, height = shape
    with pytest.raises(PipelineError) as err:
        run(pano_like(width, height))
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED
    assert why in err.value.message


def test_blank_image_is_11003() -> None:
    with pytest.raises(PipelineError) as err:
        run(np.full((1000, 2000), 128, np.uint8))
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED


def test_no_teeth_is_12003() -> None:
    with pytest.raises(PipelineError) as err:
        run(pano_like(), teeth=[])
    assert err.value.code == ErrorCode.NO_USABLE_RESULT


def test_engine_gets_the_model_input() -> None:
    engine = FakeEngine(synthetic_logits(TEETH))
    PanoPipeline(engine).run(DecodedImage(pano_like().astype(np.uint16) * 200), task_pb2.AnalysisOptions())
    (tensor,) = engine.seen
    # Image and its mirror, for the flip test-time augmentation.
    assert tensor.shape == (2, 1, 256, 512) and tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor[1], tensor[0][:, :, ::-1])
    assert abs(float(tensor.mean())) < 1e-3 and abs(float(tensor.std()) - 1) < 1e-2

