"""Panoramic radiograph -> PanoResult (CONTRACT.md section 6): teeth outlines with their numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dentalai.errors import ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from engines.base import Engine
from pipelines import base_pipeline
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer, infer, require
from pipelines.pano import instances, postrules
from pipelines.pano.findings import FINDINGS_MODELS, FindingsModel, add_findings, check_models
from pipelines.pano.numbering import (
    CLASS_FDI,
    fdi_to_universal,
    is_primary,
    mirror_fdi,
    missing_teeth,
    universal_label,
)
from pipelines.pano.outline import Outline, crop_box, outline
from pipelines.pano.preprocess import prepare, to_gray_float
from pipelines.pano.refine import REFINE_MODEL, ToothRefiner

# Channel of the same tooth on the other side (11 <-> 21 ...), for the mirrored pass.
MIRROR_CHANNELS = [0] + [CLASS_FDI.index(mirror_fdi(f)) for f in CLASS_FDI[1:]]
# (FDI number, score, outline) of one reported tooth.
Tooth = tuple[int, float, Outline]
# (FDI number, score, its own classes, whole-film outline) of one tooth the whole-film model found.
Found = tuple[int, float, np.ndarray, Outline]


@dataclass(frozen=True)
class PanoConfig:
    """Input checks and output filters; defaults fit the UFBA-trained model."""

    min_width: int = 400
    min_height: int = 200
    # Width / height: UFBA images are stretched to 1:1, real panoramics are about 2:1;
    # cephalograms (about 0.8) and intraoral films fall outside.
    min_aspect: float = 0.9
    max_aspect: float = 3.2
    # 1st-99th percentile spread below this share of the value range: blank or nearly flat image.
    min_contrast: float = 0.04
    # Teeth whose mean tooth probability is below this are not reported. Between 0.5 and 0.7 the val
    # films of both sites held 14 of 4,155 reported teeth, 13 of them unmatched (mostly teeth seen
    # in edentulous gaps), so 0.7; UFBA's val films alone also pick it (F1 0.9722 at 0.6, 0.9734 at
    # 0.7 and 0.8, 0.9694 at 0.9).
    min_score: float = 0.7
    # Also run the mirrored image (with left/right numbers swapped back) and average: steadier
    # numbering for twice the inference time.
    flip_tta: bool = True
    # Off only for evaluation ablations: keep the model's own numbers (duplicates possible).
    renumber: bool = True
    # Borders between neighbouring teeth from their up-sampled class probabilities (sub-pixel);
    # off: at the model-pixel edge of the neighbour's mask (pano-teeth 1.0.0's outlines).
    sharp_borders: bool = True


class PanoPipeline(Pipeline):
    model_name: ClassVar[str] = "pano-teeth"
    extra_models: ClassVar[tuple[str, ...]] = (REFINE_MODEL, *FINDINGS_MODELS)

    def __init__(
        self, engine: Engine, config: PanoConfig | None = None, extras: Mapping[str, Engine] | None = None
    ) -> None:
        super().__init__(engine, extras)
        self.config = config or PanoConfig()
        # The findings models given (none for tooth-only evaluation and tests: no findings).
        self.findings = {name: FindingsModel(self.extras[name].manifest)
                         for name in FINDINGS_MODELS if name in self.extras}
        check_models(list(self.findings.values()))
        # Outlines refined per tooth when the model is given (none: the whole-film outlines).
        refiner = self.extras.get(REFINE_MODEL)
        self.refiner = ToothRefiner(refiner.manifest) if refiner is not None else None
        spec = engine.manifest.inputs[0]
        self.input_name = spec.name
        self.output_name = engine.manifest.outputs[0].name
        self.height, self.width = int(spec.shape[2]), int(spec.shape[3])
        # Channels follow numbering.CLASS_FDI; a model without the primary channels (pano-teeth 1.x,
        # 33) has its first channels. The mirror of a permanent channel is a permanent one.
        self.channels = int(engine.manifest.outputs[0].shape[1])
        if not 1 < self.channels <= len(CLASS_FDI):
            raise ValueError(f"pano model has {self.channels} channels, expected at most {len(CLASS_FDI)}")
        self.mirror = MIRROR_CHANNELS[: self.channels]

    def check_input(self, pixels: np.ndarray) -> None:
        """11003 for images that cannot be a panoramic radiograph this model can read."""
        base_pipeline.check_radiograph(pixels, self.config, "panoramic")

    def run(
        self,
        image: DecodedImage,
        options: task_pb2.AnalysisOptions,
        timer: StageTimer | None = None,
    ) -> results_pb2.PanoResult:
        timer = timer or StageTimer()
        pixels = image.pixels
        with timer.stage("check"):
            self.check_input(pixels)
        with timer.stage("preprocess"):
            # One float copy of the film for the tooth model, the refinement and the findings crop
            # (each would make its own: 10-40 ms apiece for a 2943 x 1435 film).
            gray = to_gray_float(pixels)
            prepared = prepare(gray, self.height, self.width)
        with timer.stage("inference"):
            logits = self._infer(prepared.tensor)
        with timer.stage("postprocess"):
            found, probs = self._teeth(logits.astype(np.float32), prepared.scale_x, prepared.scale_y,
                                       (image.width, image.height))
        require(bool(found), ErrorCode.NO_USABLE_RESULT, "no teeth found on the image")
        teeth = [(fdi, score, shape) for fdi, score, _, shape in found]
        if self.refiner is not None:
            with timer.stage("refine"):
                own_and_outline = [(mine, shape) for _, _, mine, shape in found]
                shapes = self.refiner.refine(self.extras[REFINE_MODEL], gray, probs, own_and_outline,
                                             (prepared.scale_x, prepared.scale_y))
            teeth = [(fdi, score, shape) for (fdi, score, _), shape in zip(teeth, shapes, strict=True)]
        universal = options.tooth_numbering == results_pb2.UNIVERSAL
        result = build_result(teeth, image.width, image.height, universal)
        if self.findings:
            with timer.stage("findings"):
                models = [(model, self.extras[name]) for name, model in self.findings.items()]
                # The findings crop is set by the whole-film outlines, as the findings models were
                # validated (and the caries model trained) with; findings go to the reported teeth.
                crop_teeth = [(fdi, np.asarray(shape.polygon)) for fdi, _, _, shape in found]
                add_findings(result, models, image.pixel_spacing_mm, gray, options, crop_teeth)
        return result

    def _infer(self, tensor: np.ndarray) -> np.ndarray:
        if not self.config.flip_tta:
            return infer(self.engine, {self.input_name: tensor[None]})[self.output_name][0]
        batch = np.stack([tensor, tensor[:, :, ::-1]])
        out = infer(self.engine, {self.input_name: batch})[self.output_name]
        return 0.5 * (out[0] + out[1][self.mirror, :, ::-1])

    def _teeth(
        self, logits: np.ndarray, scale_x: float, scale_y: float, size: tuple[int, int]
    ) -> tuple[list[Found], np.ndarray]:
        """The numbered teeth with their whole-film outlines (`size`: the input's width, height),
        and the softmax they came from."""
        cands, probs = candidates(logits)
        if self.config.renumber:
            numbers = postrules.renumber(cands, float(self.width))
        else:
            numbers = [CLASS_FDI[c.label] for c in cands]
        kept = [(c, n) for c, n in zip(cands, numbers, strict=True) if n is not None]
        kept = [(c, n) for c, n in kept if c.foreground >= self.config.min_score]
        owner = np.full(probs.shape[1:], -1, np.int32)
        for k, (c, _) in enumerate(kept):
            owner[c.mask] = k
        foreground = 1.0 - probs[0]
        found = []
        for k, (c, fdi) in enumerate(kept):
            mine = instances.own_classes(c.probs, len(probs))
            own = None
            if self.config.sharp_borders:
                x0, x1, y0, y1 = crop_box(c.mask)
                own = probs[mine, y0:y1, x0:x1].sum(axis=0)
            shape = outline(c.mask, (owner >= 0) & (owner != k), foreground, scale_x, scale_y, size, own)
            if shape is not None:
                found.append((fdi, round(c.foreground, 4), mine, shape))
        return found, probs


def candidates(logits: np.ndarray) -> tuple[list[instances.Instance], np.ndarray]:
    """Tooth candidates of the tooth model's logits (float32, (C, H, W)), before the numbering rules,
    and the softmax they came from."""
    probs = instances.softmax(logits)
    cands = instances.extract(probs)
    for c in cands:  # the rules read every channel of CLASS_FDI; absent ones have probability 0
        c.probs = np.pad(c.probs, (0, len(CLASS_FDI) - len(c.probs)))
    return cands, probs


def tooth_number(fdi: int, universal: bool) -> int:
    """`number` of a tooth: FDI, or Universal 1-32; 0 for a primary tooth in Universal (its letter is
    in universal_label)."""
    if not universal:
        return fdi
    return 0 if is_primary(fdi) else fdi_to_universal(fdi)


def build_result(
    teeth: list[Tooth], width: int, height: int, universal: bool
) -> results_pb2.PanoResult:
    """The contract message; teeth sorted by FDI number, missing teeth in the requested system."""
    result = results_pb2.PanoResult(
        image=results_pb2.PanoImage(width=width, height=height),
        numbering=results_pb2.UNIVERSAL if universal else results_pb2.FDI,
    )
    for fdi, score, shape in sorted(teeth, key=lambda t: t[0]):
        tooth = result.teeth.add(
            fdi=fdi, number=tooth_number(fdi, universal), score=score, bbox=shape.bbox,
            area_px=shape.area_px, universal_label=universal_label(fdi),
        )
        tooth.polygon.extend(shape.polygon)
    missing = missing_teeth({t[0] for t in teeth})
    result.missing_teeth.extend(sorted(tooth_number(f, universal) for f in missing))
    result.summary.tooth_count = len(result.teeth)
    return result
