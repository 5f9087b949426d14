"""The processing step of one image, the same for the worker and `dentalai analyze`:
decode, the size check, the pipeline run, and the mapping of its failures to contract codes.

Engine and unexpected pipeline failures become 12001 here and nowhere else; a PipelineError (or
any DentalAIError: 11002 from the decoder, 11003 from the checks) keeps its own code.
"""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from dentalai.config import LimitsSettings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import task_pb2
from engines.base import EngineError
from grpc_server.decode import decode_image
from pipelines.base_pipeline import DecodedImage, Pipeline

log = logging.getLogger(__name__)


def decode_checked(data: bytes, limits: LimitsSettings) -> DecodedImage:
    """The decoded image (11002 when it cannot be), 11003 when a side is under min_image_side."""
    image = decode_image(data, limits.max_image_pixels, limits.max_decoded_bytes)
    if min(image.width, image.height) < limits.min_image_side:
        raise DentalAIError(
            ErrorCode.IMAGE_CHECK_FAILED,
            f"image of {image.width}x{image.height} has a side under {limits.min_image_side} pixels",
        )
    return image


def run_pipeline(pipeline: Pipeline, image: DecodedImage, options: task_pb2.AnalysisOptions) -> Message:
    """`pipeline.run`, with every failure but a contract error reported as 12001."""
    try:
        return pipeline.run(image, options)
    except DentalAIError:  # PipelineError included: its code stands
        raise
    except EngineError as exc:
        raise DentalAIError(ErrorCode.INFERENCE_FAILED, f"model inference failed: {exc}") from None
    except Exception as exc:
        log.exception("pipeline failed")
        message = f"model inference failed ({type(exc).__name__})"
        raise DentalAIError(ErrorCode.INFERENCE_FAILED, message) from None


def process(
    pipeline: Pipeline, data: bytes, options: task_pb2.AnalysisOptions, limits: LimitsSettings
) -> tuple[Message, DecodedImage]:
    """Decode and check `data`, then run the pipeline on it; the result and the decoded image."""
    image = decode_checked(data, limits)
    return run_pipeline(pipeline, image, options), image
