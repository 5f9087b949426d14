"""Lateral cephalogram -> CephResult (CONTRACT.md section 6): 19 landmarks, measurements, classes.

Two stages. Stage 1 (`ceph-landmarks`) finds the 19 landmarks on the whole film at 256x320; stage 2
(`ceph-landmarks-refine`, pipelines/ceph/refine.py) finds each again on a patch of the film at
640x800 centred on the stage-1 estimate, all 19 patches in one batch.

Orientation: the models were trained on faces looking right only. Stage 1 runs the image as given
and mirrored in one batch of two; the pass with the higher mean heatmap peak wins (a face looking
the wrong way gives clearly weaker, scattered peaks), and stage 2 cuts its patches from the film in
that direction. Landmarks are mirrored back, so coordinates are always those of the submitted
image, and measurements are signed for the face's own direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from dentalai.config import Settings
from dentalai.errors import ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from engines.base import Engine
from pipelines import base_pipeline
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer, infer, require
from pipelines.ceph import measurements as meas
from pipelines.ceph import refine
from pipelines.ceph import summary as ceph_summary
from pipelines.ceph.decode import decode_heatmaps, heatmap_to_image
from pipelines.ceph.preprocess import LANDMARK_IDS, LANDMARK_NAMES, normalise, to_gray_u8


@dataclass(frozen=True)
class CephConfig:
    """Input checks, orientation and spacing defaults."""

    min_width: int = 256
    min_height: int = 320
    # Width / height: cephalograms are about 0.8 (ISBI 0.81, Hamedan 0.80) up to square DICOM
    # detectors; panoramics (about 2) fall outside.
    min_aspect: float = 0.55
    max_aspect: float = 1.35
    # 1st-99th percentile spread below this share of the value range: blank or flat image.
    min_contrast: float = 0.04
    # Spacing used when neither the request nor DICOM gives one (mm per pixel).
    default_spacing_mm: float = 0.1
    # "auto" (both passes, keep the more confident), "right" or "left" (one pass, trust the caller).
    orientation: str = "auto"
    # Mean stage-1 heatmap peak (0..1) below `not_ceph_confidence`: the model sees no cephalogram at all
    # (11003; with model 1.1.0, 20 UFBA and 10 DC1000 panoramics scored 0.22 at most, noise 0.09,
    # ISBI val 0.75 at least (median 0.91), Hamedan 071-100 0.85 at least (median 0.91)); below
    # `min_mean_confidence`: a cephalogram, perhaps, but no landmarks worth reporting (12003).
    not_ceph_confidence: float = 0.4
    min_mean_confidence: float = 0.5


@dataclass(frozen=True)
class CephPrediction:
    """Landmarks in input pixels (19, 2), their confidences (19,), and the face direction (+1 right).

    `confidence` is the last stage's heatmap peak; `stage1_confidence` gates the image (11003/12003).
    """

    points: np.ndarray
    confidence: np.ndarray
    facing: int
    stage1_confidence: np.ndarray


REFINE_MODEL = "ceph-landmarks-refine"


class CephPipeline(Pipeline):
    model_name: ClassVar[str] = "ceph-landmarks"
    extra_models: ClassVar[tuple[str, ...]] = (REFINE_MODEL,)

    def __init__(
        self, engine: Engine, config: CephConfig | None = None, extras: Mapping[str, Engine] | None = None
    ) -> None:
        super().__init__(engine, extras)
        self.config = config or CephConfig()

        spec = engine.manifest.inputs[0]
        self.input_name = spec.name
        self.output_name = engine.manifest.outputs[0].name
        self.height, self.width = int(spec.shape[2]), int(spec.shape[3])
        out_h = int(engine.manifest.outputs[0].shape[2])
        self.stride = self.height / out_h

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, extras: Mapping[str, Engine] | None = None
    ) -> CephPipeline:
        return cls(engine, CephConfig(default_spacing_mm=settings.ceph.default_pixel_spacing_mm), extras)

    @property
    def refine_engine(self) -> Engine | None:
        """Stage 2. Without it (unit tests with one fake engine) the pipeline reports stage 1 as it
        is; the worker's registry always loads it."""
        return self.extras.get(REFINE_MODEL)

    def check_input(self, pixels: np.ndarray) -> None:
        """11003 for images that cannot be a lateral cephalogram this model can read."""
        base_pipeline.check_radiograph(pixels, self.config, "cephalogram")

    def spacing(self, image: DecodedImage, options: task_pb2.AnalysisOptions) -> tuple[float, str]:
        mm, source = base_pipeline.pixel_spacing(image.pixel_spacing_mm, options)
        return (mm, source) if source else (self.config.default_spacing_mm, "default")

    def predict(self, pixels: np.ndarray, timer: StageTimer | None = None) -> CephPrediction:
        """Landmarks in input pixels; stage 1 runs the given and the mirrored image unless orientation
        is fixed, stage 2 (when loaded) refines the winning pass."""
        timer = timer or StageTimer()
        with timer.stage("stage1"):
            gray = to_gray_u8(pixels)
            h, w = gray.shape
            frame = refine.to_ref(gray)
            small = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            orient = self.config.orientation
            views = {"right": [1], "left": [-1]}.get(orient, [1, -1])
            batch = np.stack([normalise(small if f > 0 else small[:, ::-1])[None] for f in views])
            heat = infer(self.engine, {self.input_name: batch})[self.output_name]
            decoded = [decode_heatmaps(np.asarray(hm, np.float32)) for hm in heat]
            best = int(np.argmax([float(np.mean(np.clip(peaks, 0, 1))) for _, peaks in decoded]))
            coords, peaks = decoded[best]
            facing = views[best]
            # Stage-1 points in the (face-right) view of the 640x800 frame.
            pts = heatmap_to_image(
                coords, self.stride, refine.REF_WIDTH / self.width, refine.REF_HEIGHT / self.height
            )
            conf1 = np.clip(peaks, 0.0, 1.0)
        conf = conf1
        if self.refine_engine is not None:
            with timer.stage("stage2"):
                view = frame if facing > 0 else np.ascontiguousarray(frame[:, ::-1])
                patches, mats = refine.patches(view, pts)
                spec = self.refine_engine.manifest
                heat2 = infer(self.refine_engine, {spec.inputs[0].name: patches})[spec.outputs[0].name]
                pts2, peaks2 = refine.decode(np.asarray(heat2, np.float32), mats)
                conf = np.clip(peaks2, 0.0, 1.0)
                pts = refine.blend(pts, pts2, conf)
        if facing < 0:
            pts[:, 0] = (refine.REF_WIDTH - 1) - pts[:, 0]
        pts = (pts + 0.5) * [w / refine.REF_WIDTH, h / refine.REF_HEIGHT] - 0.5
        return CephPrediction(pts, conf, facing, conf1)

    def run(
        self,
        image: DecodedImage,
        options: task_pb2.AnalysisOptions,
        timer: StageTimer | None = None,
    ) -> results_pb2.CephResult:
        timer = timer or StageTimer()
        with timer.stage("check"):
            self.check_input(image.pixels)
        pred = self.predict(image.pixels, timer)
        with timer.stage("postprocess"):
            self.check_landmarks(pred)
            spacing, source = self.spacing(image, options)
            return build_result(pred, image.width, image.height, spacing, source)

    def check_landmarks(self, pred: CephPrediction) -> None:
        """11003 when nothing looks like a face, 12003 unless landmarks are confident and face-like."""
        mean_conf = float(pred.stage1_confidence.mean())
        require(
            mean_conf >= self.config.not_ceph_confidence,
            ErrorCode.IMAGE_CHECK_FAILED,
            f"image does not look like a lateral cephalogram (mean landmark confidence {mean_conf:.2f})",
        )
        require(
            mean_conf >= self.config.min_mean_confidence,
            ErrorCode.NO_USABLE_RESULT,
            f"no credible landmarks (mean confidence {mean_conf:.2f} < {self.config.min_mean_confidence})",
        )
        p = meas.canonical(pred.points, pred.facing)
        # Coarse anatomy in the face's frame: nasion ahead of sella, menton below nasion and sella,
        # upper incisor below ANS, ANS ahead of PNS.
        plausible = (
            p["N"][0] > p["S"][0]
            and p["Me"][1] > max(p["N"][1], p["S"][1])
            and p["UIT"][1] > p["ANS"][1]
            and p["ANS"][0] > p["PNS"][0]
        )
        require(
            plausible, ErrorCode.NO_USABLE_RESULT, "landmarks are not laid out like a lateral cephalogram"
        )


def build_result(
    pred: CephPrediction, width: int, height: int, spacing_mm: float, spacing_source: str
) -> results_pb2.CephResult:
    """The contract message from landmarks in input pixels."""
    result = results_pb2.CephResult(
        image=results_pb2.CephImage(
            width=width, height=height, pixel_spacing_mm=spacing_mm, spacing_source=spacing_source
        )
    )
    for lid, name, (x, y), conf in zip(
        LANDMARK_IDS, LANDMARK_NAMES, pred.points, pred.confidence, strict=True
    ):
        result.landmarks.add(
            id=lid, name=name, x=round(float(x), 2), y=round(float(y), 2), confidence=round(float(conf), 3)
        )
    values = meas.raw_values(meas.canonical(pred.points, pred.facing), spacing_mm)
    for m in meas.measurements_from_values(values):
        result.measurements.add(
            id=m.id,
            name=m.name,
            value=m.value,
            unit=m.unit,
            norm=results_pb2.Norm(mean=m.mean, sd=m.sd),
            interpretation=m.interpretation,
            convention=m.convention,
        )
    for c in meas.classifications_from_values(values):
        result.classifications.add(
            id=c.id,
            name=c.name,
            value=c.value,
            unit=c.unit,
            category=c.category,
            label=c.label,
            convention=c.convention,
        )
    skeletal, vertical = ceph_summary.skeletal_class(values), ceph_summary.vertical_pattern(values)
    s = result.summary
    s.skeletal_class, s.skeletal_agreement = skeletal.label, skeletal.agreement
    s.skeletal_rule = skeletal.rule
    s.vertical_pattern, s.vertical_agreement = vertical.label, vertical.agreement
    s.vertical_rule = vertical.rule
    for verdict, field in ((skeletal, s.skeletal_indicators), (vertical, s.vertical_indicators)):
        for i in verdict.indicators:
            field.add(id=i.id, value=i.value, unit=i.unit, label=i.label, convention=i.convention)
    return result
