"""Edentulous films, the film check's place in the pipeline and calibrated tooth scores, with a fake
tooth model: which answer (a result, 11003, 12003) a film gets, and what the result says."""

import numpy as np
import pytest
from pano_helpers import FakeEngine, position

from dentalai.errors import ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.calibration import Calibrator, transform
from pipelines.pano import PanoPipeline
from pipelines.pano.dentition import edentulous_jaws, jaw_mass
from pipelines.pano.numbering import CLASS_FDI, PERMANENT_FDI, fdi_to_universal

H, W = 256, 512
LOWER = [31, 32, 33, 34, 35, 41, 42, 43, 44, 45]


class StubCheck:
    """The film check's interface: `min_teeth` and why a film is refused ("" when it is not)."""

    def __init__(self, why: str = "", min_teeth: int = 12) -> None:
        self.why, self.min_teeth = why, min_teeth
        self.asked = 0

    def refusal(self, image: np.ndarray) -> str:
        self.asked += 1
        return self.why


def logits(teeth: list[int], weak: list[int] = ()) -> np.ndarray:
    """Logits of a clean film: a background the model is sure of (its tooth probability summed over
    the film is far below one tooth), a 16 x 40 tooth per number of `teeth`, and for `weak` a
    tooth-like patch whose mean tooth probability (about 0.6) stays under the reporting threshold."""
    out = np.zeros((len(CLASS_FDI), H, W), np.float32)
    out[0] = 15.0
    for fdi in teeth:
        x, y = position(fdi)
        ys, xs = slice(int(y) - 20, int(y) + 20), slice(int(x) - 8, int(x) + 8)
        out[0, ys, xs] = -5.0
        out[CLASS_FDI.index(fdi), ys, xs] = 8.0
    for fdi in weak:
        x, y = position(fdi)
        ys, xs = slice(int(y) - 20, int(y) + 20), slice(int(x) - 8, int(x) + 8)
        out[0, ys, xs] = 5.2
        out[CLASS_FDI.index(fdi), ys, xs] = 5.5
    return out


def film() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (1000, 2000), dtype=np.uint8)


def run(
    teeth: list[int], check: StubCheck | None, weak: list[int] = (), numbering: int = results_pb2.FDI
) -> results_pb2.PanoResult:
    pipeline = PanoPipeline(FakeEngine(logits(teeth, weak)))
    pipeline.film_check = check
    return pipeline.run(DecodedImage(film()), task_pb2.AnalysisOptions(tooth_numbering=numbering))


def test_an_edentulous_film_is_a_result_with_every_tooth_missing() -> None:
    check = StubCheck()
    result = run([], check)
    assert check.asked == 1
    assert len(result.teeth) == 0 and result.summary.tooth_count == 0
    assert list(result.summary.edentulous_jaws) == ["upper", "lower"]
    assert list(result.missing_teeth) == list(PERMANENT_FDI)
    universal = run([], StubCheck(), numbering=results_pb2.UNIVERSAL)
    assert list(universal.missing_teeth) == list(range(1, 33))


def test_a_jaw_without_teeth_is_named_and_the_other_is_not() -> None:
    result = run(LOWER, StubCheck())
    assert sorted(t.fdi for t in result.teeth) == sorted(LOWER)
    assert list(result.summary.edentulous_jaws) == ["upper"]
    assert {fdi_to_universal(f) for f in (11, 18, 28)} <= set(
        run(LOWER, StubCheck(), numbering=results_pb2.UNIVERSAL).missing_teeth
    )


def test_a_film_that_is_no_panoramic_is_11003_not_edentulous() -> None:
    with pytest.raises(PipelineError) as err:
        run(
            [],
            StubCheck(
                "its layout is unlike a panoramic's (film check score 2.40, panoramic films up to 1.69)"
            ),
        )
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED
    assert "does not look like a panoramic radiograph: 0 teeth found and its layout" in err.value.message


def test_a_film_with_many_teeth_is_not_asked_the_film_check() -> None:
    teeth = [11, 12, 13, 14, 21, 22, 23, 24, *LOWER]
    check = StubCheck("never asked")
    result = run(teeth, check)
    assert check.asked == 0 and len(result.teeth) == len(teeth) >= check.min_teeth
    assert list(result.summary.edentulous_jaws) == []
    few = StubCheck("refused")
    with pytest.raises(PipelineError):  # under min_teeth the check decides
        run(LOWER, few)
    assert few.asked == 1


def test_tooth_like_structures_that_no_tooth_outlines_are_12003() -> None:
    with pytest.raises(PipelineError) as err:
        run([], StubCheck(), weak=[11, 12, 21])
    assert err.value.code == ErrorCode.NO_USABLE_RESULT
    assert "no tooth could be outlined, though the upper jaw shows tooth-like structures" in err.value.message
    # The same weak upper teeth beside reported lower ones: a result, the upper jaw not called edentulous.
    result = run(LOWER, StubCheck(), weak=[11, 12, 21])
    assert list(result.summary.edentulous_jaws) == []


def test_without_a_film_check_a_film_without_teeth_stays_12003() -> None:
    with pytest.raises(PipelineError) as err:
        run([], None)
    assert err.value.code == ErrorCode.NO_USABLE_RESULT and "no teeth found" in err.value.message


def test_jaw_mass_and_the_edentulous_rule() -> None:
    probs = np.zeros((len(CLASS_FDI), 10, 10), np.float32)
    probs[0] = 1.0
    probs[CLASS_FDI.index(11), :5] = 0.5  # 50 px at 0.5: 25 px of upper-tooth probability
    probs[CLASS_FDI.index(55), :5] = 0.25  # a primary upper tooth counts for the upper jaw
    probs[CLASS_FDI.index(46), 5:] = 0.1
    assert jaw_mass(probs, "upper") == pytest.approx(37.5) and jaw_mass(probs, "lower") == pytest.approx(5.0)
    assert edentulous_jaws([], probs, 10.0) == ["lower"]
    assert edentulous_jaws([], probs, 40.0) == ["upper", "lower"]
    assert edentulous_jaws([36], probs, 40.0) == ["upper"]  # a tooth found in the lower jaw


def test_scores_are_calibrated_and_uncertain_numbers_flagged() -> None:
    pipeline = PanoPipeline(FakeEngine(logits(LOWER)))
    pipeline.film_check = StubCheck()
    # P(right) = sigmoid(-1 + 2 logit(raw score) + 0 ...): a raw score of 0.5 gives 0.27, under 0.5.
    pipeline.calibrator = Calibrator(("raw_score", "number_share"), ("logit", "logit"), (2.0, 0.0), -1.0)
    pipeline.check_number_below = 0.5
    result = pipeline.run(DecodedImage(film()), task_pb2.AnalysisOptions())
    for t in result.teeth:
        expected = 1 / (1 + np.exp(1.0 - 2 * float(transform("logit", t.raw_score))))  # logit clipped at 1e-4
        assert t.score == pytest.approx(expected, abs=1e-4) and t.raw_score > 0.99
        assert not t.check_number
    pipeline.check_number_below = 1.01  # every tooth under it
    assert all(t.check_number for t in pipeline.run(DecodedImage(film()), task_pb2.AnalysisOptions()).teeth)


def test_without_a_calibration_the_score_is_the_raw_score() -> None:
    result = run(LOWER, StubCheck())
    assert all(t.score == t.raw_score and not t.check_number for t in result.teeth)
