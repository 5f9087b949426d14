"""What every pipeline shares: the decoded image it receives, its error, its stage timer.

A pipeline is pure: the worker, the CLI and the evaluation scripts call `run` the same way.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
from google.protobuf.message import Message

from dentalai.config import Settings
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from engines.base import Engine


@dataclass(frozen=True)
class DecodedImage:
    """An image as the worker decoded it.

    `pixels` is 2-D grayscale (H, W), uint8 or uint16; the decoder converts colour to gray and
    applies DICOM photometric interpretation, so pipelines see "bright = dense" everywhere.
    """

    pixels: np.ndarray
    # From DICOM PixelSpacing / ImagerPixelSpacing when present (row spacing, col spacing averaged
    # only if they differ by < 1 %); None otherwise.
    pixel_spacing_mm: float | None = None
    source_format: str = ""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


class PipelineError(DentalAIError):
    """A processing error with its contract code (11003, 12001, 12003, ...)."""


@dataclass
class StageTimer:
    """Wall time per named stage, in milliseconds; used by benchmarks and the worker's logs."""

    stages_ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages_ms[name] = self.stages_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


class Pipeline(ABC):
    """Turns a decoded radiograph into the result message of one taskType."""

    # Name of the model directory under models/ that this pipeline needs; its version names the result.
    model_name: ClassVar[str]
    # Further model directories it runs after the first (a refinement stage, a findings model). The
    # registry loads and warms each like the first; a missing one makes the task type unavailable.
    extra_models: ClassVar[tuple[str, ...]] = ()

    def __init__(self, engine: Engine, extras: Mapping[str, Engine] | None = None) -> None:
        self.engine = engine
        self.extras: dict[str, Engine] = dict(extras or {})

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, extras: Mapping[str, Engine] | None = None
    ) -> Pipeline:
        """The pipeline as a worker runs it (a pipeline with settings of its own overrides this)."""
        return cls(engine, extras=extras)

    @property
    def engines(self) -> list[Engine]:
        """Every engine the pipeline runs, the first model's first."""
        return [self.engine, *self.extras.values()]

    @property
    def model_info(self) -> results_pb2.ModelInfo:
        """The first model's name and version, with every further model as a component."""
        first, *rest = (e.manifest for e in self.engines)
        info = results_pb2.ModelInfo(name=first.name, version=first.version)
        for m in rest:
            info.components.add(name=m.name, version=m.version)
        return info

    @abstractmethod
    def run(
        self,
        image: DecodedImage,
        options: task_pb2.AnalysisOptions,
        timer: StageTimer | None = None,
    ) -> Message:
        """Analyse `image`; raise PipelineError with its contract code when it cannot."""


class InputLimits(Protocol):
    """What a pipeline's config says about the images it can read."""

    min_width: int
    min_height: int
    min_aspect: float
    max_aspect: float
    min_contrast: float


def check_radiograph(pixels: np.ndarray, limits: InputLimits, kind: str) -> None:
    """11003 for an image that cannot be a `kind` radiograph: not 2-D, too small, the wrong
    aspect ratio, or blank (the check every pipeline makes before its model runs)."""
    code = ErrorCode.IMAGE_CHECK_FAILED
    require(pixels.ndim in (2, 3), code, f"not a 2-D image: shape {pixels.shape}")
    h, w = pixels.shape[:2]
    require(
        w >= limits.min_width and h >= limits.min_height,
        code,
        f"image {w}x{h} is too small for a {kind} (minimum {limits.min_width}x{limits.min_height})",
    )
    aspect = w / h
    require(
        limits.min_aspect <= aspect <= limits.max_aspect,
        code,
        f"aspect ratio {aspect:.2f} (width/height) is not that of a {kind} "
        f"({limits.min_aspect}-{limits.max_aspect})",
    )
    # A 512-ish sample is enough for percentiles and keeps the check cheap on large images.
    sample = np.asarray(pixels[:: max(h // 512, 1), :: max(w // 512, 1)], np.float32)
    if sample.ndim == 3:
        sample = sample.mean(axis=2)
    full_range = 65535.0 if pixels.dtype == np.uint16 and sample.max() > 255 else 255.0
    lo, hi = np.percentile(sample, [1, 99])
    require((hi - lo) / full_range >= limits.min_contrast, code, "image is blank or has almost no contrast")


def pixel_spacing(image_spacing_mm: float | None, options: task_pb2.AnalysisOptions) -> tuple[float, str]:
    """(mm per pixel, source): the request's pixelSpacingMm, else the DICOM header's; (0, "") when
    neither gives one (each pipeline decides what unknown means: ceph assumes its default)."""
    if options.HasField("pixel_spacing_mm") and options.pixel_spacing_mm > 0:
        return float(options.pixel_spacing_mm), "request"
    if image_spacing_mm:
        return float(image_spacing_mm), "dicom"
    return 0.0, ""


def infer(engine: Engine, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`engine.infer`, any failure as 12001 naming the model (the engine's own message kept): the one
    place every pipeline's model calls map engine failures to the contract's code."""
    try:
        return engine.infer(feeds)
    except Exception as exc:  # engine failures carry their own message
        message = f"{engine.manifest.name} model failed: {exc}"
        raise PipelineError(ErrorCode.INFERENCE_FAILED, message) from exc


def require(condition: bool, code: ErrorCode, message: str) -> None:
    """Raise PipelineError(code, message) unless `condition` holds."""
    if not condition:
        raise PipelineError(code, message)
