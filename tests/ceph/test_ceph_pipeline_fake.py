"""The pipeline's own logic with a fake engine: checks, errors, orientation, coordinates, spacing."""

import numpy as np
import pytest
from ceph_helpers import HM_H, HM_W, FakeEngine, marked_image, skull_array

from dentalai.errors import ErrorCode
from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.ceph.pipeline import CephPipeline
from pipelines.ceph.preprocess import INPUT_HEIGHT, INPUT_WIDTH, LANDMARK_IDS


def skull_in_heatmap() -> np.ndarray:
    """The hand-made skull placed inside the heatmap frame (pixels)."""
    pts = skull_array()
    pts = pts - pts.min(axis=0)
    scale = 0.7 * min(HM_W / np.ptp(pts[:, 0]), HM_H / np.ptp(pts[:, 1]))
    return pts * scale + [0.15 * HM_W, 0.1 * HM_H]


def run(pixels: np.ndarray, engine: FakeEngine, **opts: float) -> object:
    return CephPipeline(engine).run(DecodedImage(pixels=pixels), task_pb2.AnalysisOptions(**opts))


def expected_image_points(hm: np.ndarray, width: int, height: int) -> np.ndarray:
    model = (hm + 0.5) * 2 - 0.5
    return (model + 0.5) * [width / INPUT_WIDTH, height / INPUT_HEIGHT] - 0.5


def test_landmarks_mapped_to_input_pixels() -> None:
    hm = skull_in_heatmap()
    result = run(marked_image(1000, 1250), FakeEngine(hm), pixel_spacing_mm=0.1)
    got = np.array([[lm.x, lm.y] for lm in result.landmarks])
    # Gaussians centred off-grid: the sub-pixel decoding recovers them to well under a pixel.
    np.testing.assert_allclose(got, expected_image_points(hm, 1000, 1250), atol=0.6)
    assert [lm.id for lm in result.landmarks] == LANDMARK_IDS
    # Peaks between grid pixels read a little under the 0.9 the fake model drew.
    assert all(0.8 <= lm.confidence <= 0.9 for lm in result.landmarks)
    assert result.image.width == 1000 and result.image.height == 1250
    assert result.image.spacing_source == "request" and result.image.pixel_spacing_mm == 0.1
    assert len(result.classifications) == 8 and result.summary.skeletal_class


def test_mirrored_input_round_trip() -> None:
    hm = skull_in_heatmap()
    img = marked_image(1000, 1250)
    right = run(img, FakeEngine(hm))
    left = run(np.ascontiguousarray(img[:, ::-1]), FakeEngine(hm))
    r = np.array([[lm.x, lm.y] for lm in right.landmarks])
    lt = np.array([[lm.x, lm.y] for lm in left.landmarks])
    np.testing.assert_allclose(lt[:, 0], 999 - r[:, 0], atol=0.05)
    np.testing.assert_allclose(lt[:, 1], r[:, 1], atol=0.05)
    # Same face, other way round: the same measurements.
    for a, b in zip(right.measurements, left.measurements, strict=True):
        assert a.value == pytest.approx(b.value, abs=0.02), a.id


def test_spacing_sources() -> None:
    engine, img = FakeEngine(skull_in_heatmap()), marked_image()
    pipe = CephPipeline(engine)
    opts = task_pb2.AnalysisOptions()
    assert pipe.run(DecodedImage(img), opts).image.spacing_source == "default"
    dicom = pipe.run(DecodedImage(img, pixel_spacing_mm=0.14), opts).image
    assert (dicom.spacing_source, dicom.pixel_spacing_mm) == ("dicom", 0.14)
    req = pipe.run(DecodedImage(img, pixel_spacing_mm=0.14), task_pb2.AnalysisOptions(pixel_spacing_mm=0.2))
    assert (req.image.spacing_source, req.image.pixel_spacing_mm) == ("request", 0.2)
    # mm measurements scale with the spacing, angles do not.
    a = {
        m.id: m.value
        for m in pipe.run(DecodedImage(img), task_pb2.AnalysisOptions(pixel_spacing_mm=0.1)).measurements
    }
    b = {
        m.id: m.value
        for m in pipe.run(DecodedImage(img), task_pb2.AnalysisOptions(pixel_spacing_mm=0.2)).measurements
    }
    assert b["SNA"] == pytest.approx(a["SNA"], abs=0.01)
    assert b["U1-NA-mm"] == pytest.approx(2 * a["U1-NA-mm"], abs=0.02)


@pytest.mark.parametrize(
    ("pixels", "why"),
    [
        (np.full((200, 160), 128, np.uint8), "too small"),
        (marked_image(2000, 1000), "aspect"),
        (np.full((1250, 1000), 128, np.uint8), "contrast"),
    ],
)
def test_input_checks(pixels: np.ndarray, why: str) -> None:
    with pytest.raises(PipelineError) as exc:
        run(pixels, FakeEngine(skull_in_heatmap()))
    assert exc.value.code == ErrorCode.IMAGE_CHECK_FAILED
    assert why in exc.value.message


@pytest.mark.parametrize(
    ("peak", "code"), [(0.1, ErrorCode.IMAGE_CHECK_FAILED), (0.48, ErrorCode.NO_USABLE_RESULT)]
)
def test_no_credible_landmarks(peak: float, code: ErrorCode) -> None:
    # Peaks are read a little under the drawn value (off-grid centres); both stay in their band.
    weak = FakeEngine(skull_in_heatmap(), strong=peak, weak=peak)
    with pytest.raises(PipelineError) as exc:
        run(marked_image(), weak)
    assert exc.value.code == code


def test_implausible_layout() -> None:
    hm = skull_in_heatmap()
    hm[[0, 1]] = hm[[1, 0]]  # sella ahead of nasion
    with pytest.raises(PipelineError) as exc:
        run(marked_image(), FakeEngine(hm))
    assert exc.value.code == ErrorCode.NO_USABLE_RESULT


def test_engine_failure_is_12001() -> None:
    class Broken(FakeEngine):
        def infer(self, inputs: object) -> dict:
            raise RuntimeError("boom")

    with pytest.raises(PipelineError) as exc:
        run(marked_image(), Broken(skull_in_heatmap()))
    assert exc.value.code == ErrorCode.INFERENCE_FAILED


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_lookup_table_matches_the_float_stretch(dtype: type) -> None:
    from pipelines.ceph.preprocess import _stretch, to_gray_u8

    rng = np.random.default_rng(1)
    image = rng.integers(0, np.iinfo(dtype).max, (301, 257), dtype=dtype)
    image[:40] = 0  # a dark band so the low percentile is not the minimum
    sample = image[:: max(1, 301 // 256), :: max(1, 257 // 256)].astype(np.float32)
    lo, hi = np.percentile(sample, [0.5, 99.5])
    assert np.array_equal(to_gray_u8(image), _stretch(image.astype(np.float32), lo, hi))
