"""The processing step the worker and `dentalai analyze` share: codes for each kind of failure."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from engines.base import EngineError
from grpc_server.processing import process
from pipelines.base_pipeline import DecodedImage, Pipeline, PipelineError, StageTimer
from tests.backbone.helpers import png_bytes
from tests.conftest import make_settings


class Scripted(Pipeline):
    model_name = "scripted"

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def run(
        self, image: DecodedImage, options: task_pb2.AnalysisOptions, timer: StageTimer | None = None
    ) -> Message:
        if self.failure is not None:
            raise self.failure
        return results_pb2.PanoResult(image=results_pb2.PanoImage(width=image.width, height=image.height))


LIMITS = make_settings("redis://127.0.0.1:1/0", limits={"min_image_side": 16}).limits
OPTIONS = task_pb2.AnalysisOptions()


def _code(pipeline: Pipeline, data: bytes) -> int:
    with pytest.raises(DentalAIError) as err:
        process(pipeline, data, OPTIONS, LIMITS)
    return int(err.value.code)


def test_result_and_decoded_image() -> None:
    result, image = process(Scripted(), png_bytes(64, 48), OPTIONS, LIMITS)
    assert (result.image.width, result.image.height) == (64, 48) == (image.width, image.height)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (EngineError("cuda died"), 12001),
        (ValueError("a pipeline bug"), 12001),
        (PipelineError(ErrorCode.NO_USABLE_RESULT, "no landmarks"), 12003),
        (PipelineError(ErrorCode.IMAGE_CHECK_FAILED, "not a pano"), 11003),
    ],
)
def test_pipeline_failures_map_to_their_codes(failure: Exception, code: int) -> None:
    assert _code(Scripted(failure), png_bytes(64, 48)) == code


def test_undecodable_and_too_small_images() -> None:
    assert _code(Scripted(), b"not an image") == 11002
    assert _code(Scripted(), png_bytes(8, 48)) == 11003
