"""The shipped ceph pipeline (both stages, as a worker loads them) refuses what is not a lateral
cephalogram with 11003: non-radiographs and panoramics, also when stretched to a cephalogram's shape
so that the input check's aspect rule cannot refuse them (pipelines/pano/evaluation/wrong_kind.py
measures every film of ../shared/data)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ceph_helpers import DATA, MODEL_DIR

from dentalai.errors import ErrorCode
from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.pano.evaluation import non_radiographs

PANO = DATA / "pano" / "tufts" / "images" / "72.jpg"


@pytest.fixture(scope="module")
def pipeline() -> object:
    from pipelines.ceph.evaluation.eval_ceph import load_ceph

    return load_ceph(MODEL_DIR.parent, threads=1)


def refused(pipeline: object, pixels: np.ndarray) -> str:
    with pytest.raises(PipelineError) as err:
        pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
    assert err.value.code == ErrorCode.IMAGE_CHECK_FAILED
    return err.value.message


@pytest.mark.parametrize("kind", ["uniform noise", "pink noise", "shapes", "text page", "blank"])
def test_a_non_radiograph_with_a_cephalograms_shape_is_11003(pipeline: object, kind: str) -> None:
    message = refused(pipeline, non_radiographs.image(kind, 800, 1000))
    assert "lateral cephalogram" in message or "blank" in message


def test_a_panoramic_is_11003_as_it_is_and_stretched(pipeline: object) -> None:
    if not PANO.is_file():
        pytest.skip(f"../shared/data is absent here: {PANO}")
    pano = cv2.imread(str(PANO), cv2.IMREAD_GRAYSCALE)
    assert "aspect ratio" in refused(pipeline, pano)
    assert "does not look like a lateral cephalogram" in refused(pipeline, cv2.resize(pano, (800, 1000)))
