"""The shipped pano pipeline (as a worker loads it) on an edentulous film, a film with one edentulous
jaw, a non-radiograph and a cephalogram; and its calibrated scores on a film with teeth.

Films from ../shared/data (skipped with the reason when absent; CI has them): Tufts validation films
2 (no tooth annotated, both jaws edentulous) and 772 (ten lower teeth annotated, none upper), never
trained on (training/pano/split_tufts.json), and ISBI validation cephalogram 151.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pano_helpers import DATA

from dentalai.errors import ErrorCode
from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.pano.evaluation import non_radiographs
from pipelines.pano.numbering import PERMANENT_FDI

ROOT = Path(__file__).resolve().parents[2]
TUFTS = DATA / "pano" / "tufts" / "images"
CEPH = DATA / "ceph" / "isbi2015_640x800" / "images" / "151.png"


def tufts(name: str) -> np.ndarray:
    path = TUFTS / name
    if not path.is_file():
        pytest.skip(f"../shared/data is absent here: {path}")
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def pipeline() -> object:
    from pipelines.registry import load_pipeline

    return load_pipeline("pano", ROOT / "models", threads=1)  # every model, as a worker loads them


def run(pipeline: object, pixels: np.ndarray) -> object:
    return pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())


def test_the_validation_films_are_never_trained_on() -> None:
    split = json.loads((ROOT / "training" / "pano" / "split_tufts.json").read_text())
    assert {2, 772} <= set(split["val"]) and not {2, 772} & set(split["train"])


def test_an_edentulous_film_succeeds_with_no_teeth_and_both_jaws_edentulous(pipeline: object) -> None:
    result = run(pipeline, tufts("2.jpg"))
    assert len(result.teeth) == 0 and result.summary.tooth_count == 0
    assert list(result.summary.edentulous_jaws) == ["upper", "lower"]
    assert list(result.missing_teeth) == list(PERMANENT_FDI)
    assert len(result.findings) == 0


def test_a_film_with_an_edentulous_upper_jaw(pipeline: object) -> None:
    result = run(pipeline, tufts("772.jpg"))
    assert list(result.summary.edentulous_jaws) == ["upper"]
    fdis = [t.fdi for t in result.teeth]
    assert len(fdis) >= 8 and all(f // 10 in (3, 4, 7, 8) for f in fdis)


@pytest.mark.parametrize("kind", ["uniform noise", "pink noise", "shapes", "text page"])
def test_a_non_radiograph_with_a_panoramics_shape_is_11003(pipeline: object, kind: str) -> None:
    with pytest.raises(PipelineError) as err:
        run(pipeline, non_radiographs.image(kind, 2000, 1000))
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED
    assert "does not look like a panoramic radiograph" in err.value.message


def test_a_cephalogram_is_11003_even_stretched_to_a_panoramics_shape(pipeline: object) -> None:
    if not CEPH.is_file():
        pytest.skip(f"../shared/data is absent here: {CEPH}")
    ceph = cv2.imread(str(CEPH), cv2.IMREAD_GRAYSCALE)
    for pixels, words in ((ceph, "aspect ratio"), (cv2.resize(ceph, (2000, 1000)), "panoramic radiograph")):
        with pytest.raises(PipelineError) as err:
            run(pipeline, pixels)
        assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED and words in err.value.message


def test_scores_are_calibrated_probabilities(pipeline: object) -> None:
    result = run(pipeline, tufts("72.jpg"))
    assert len(result.teeth) >= 10
    assert all(0 < t.score <= 1 and t.raw_score >= 0.7 for t in result.teeth)
    # The calibrated score is not the raw mean tooth probability, and it spreads wider.
    assert any(abs(t.score - t.raw_score) > 0.01 for t in result.teeth)
    assert all(t.check_number == (t.score < 0.5) for t in result.teeth)
    for f in result.findings:
        assert 0 < f.score < 1 and f.raw_score >= 0.2


def test_the_worker_step_answers_an_edentulous_jpeg_with_a_result_and_its_artifacts(pipeline: object) -> None:
    """`grpc_server.processing.process` (decode, check, pipeline: what the worker runs before the
    callback) on the film's own JPEG bytes, then the artifacts the worker makes of the result."""
    from artifacts.make import Source, make_artifacts
    from dentalai.config import load_config
    from dentalai.task_json import message_dict
    from grpc_server.processing import process

    raw = (TUFTS / "2.jpg").read_bytes() if (TUFTS / "2.jpg").is_file() else None
    if raw is None:
        pytest.skip(f"../shared/data is absent here: {TUFTS / '2.jpg'}")
    limits = load_config(environ={}).limits
    result, image = process(pipeline, raw, task_pb2.AnalysisOptions(), limits)
    data = message_dict(result)
    assert data["summary"] == {"toothCount": 0, "edentulousJaws": ["upper", "lower"]}
    files = make_artifacts(Source("pano", data, image.pixels, raw, "jpeg", "edentulous-2"), 1600)
    assert {"overlay.png", "report.pdf", "report.dcm"} <= set(files)
    ok, png = cv2.imencode(".png", non_radiographs.image("uniform noise", 2000, 1000))
    with pytest.raises(PipelineError) as err:
        process(pipeline, png.tobytes(), task_pb2.AnalysisOptions(), limits)
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED
