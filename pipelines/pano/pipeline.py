"""Panoramic radiograph -> PanoResult (CONTRACT.md section 6): teeth outlines with their numbers.

Besides the teeth, the pipeline decides two things about the film as a whole:
- Is it a panoramic radiograph at all? A film on which the tooth model finds fewer than
  `film_check.min_teeth` teeth must also look like one (`film_check.py`), or it is refused with 11003:
  noise, a photograph or another kind of radiograph is no edentulous patient.
- Which jaws are edentulous: a jaw with no tooth found and less than one tooth's worth of the tooth
  model's probability for that jaw's teeth anywhere on the film (`dentition.py`). An edentulous film
  is a result (no teeth, every tooth missing, `summary.edentulousJaws`), not an error; 12003 stays
  for a film whose tooth-like structures none could be outlined.
Scores: each tooth's `score` is the calibrated probability that it is a tooth with the right number
(pipelines/calibration.py, fitted on validation films; the manifest's `calibration`), `rawScore`
the mean tooth probability the `min_score` threshold applies to; a tooth whose number is uncertain
(`score` below `calibration.check_number_below`) carries `checkNumber`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dentalai.errors import ErrorCode
from dentalai.v1 import results_pb2, task_pb2
from engines.base import Engine
from pipelines import base_pipeline
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer, infer, require
from pipelines.calibration import Calibrator
from pipelines.pano import instances, postrules
from pipelines.pano.dentition import JAWS, edentulous_jaws
from pipelines.pano.film_check import FilmCheck
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


@dataclass(frozen=True)
class Found:
    """One tooth the whole-film model found: its number, mean tooth probability (`raw_score`), the
    share of that probability on its number (`number_share`), its own classes and whole-film outline."""

    fdi: int
    raw_score: float
    number_share: float
    own: np.ndarray
    outline: Outline


@dataclass(frozen=True)
class Tooth:
    """One reported tooth: number, calibrated score, raw score, whether to check its number, outline."""

    fdi: int
    score: float
    raw_score: float
    check_number: bool
    outline: Outline


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
    # A jaw with no tooth found is edentulous when the tooth model's probability for that jaw's
    # teeth, summed over the film, is below this many median teeth (740 model px, the median area
    # of a reported tooth on the training films). On the training films every threshold from 0.75 to
    # 3 teeth gave the same calls (pano-teeth's card, Edentulous films).
    edentulous_tooth_mass: float = 1.0
    tooth_area_px: float = 740.0
    # Off only for evaluation: no film check (no 11003 for a film without teeth, and no edentulous call).
    film_check: bool = True


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
        raw = engine.manifest.raw or {}
        directory = Path(engine.manifest.directory)
        # Without a film check (a model or a test without one) a film without teeth stays 12003: nothing
        # then says that the jaws are there.
        check = raw.get("film_check") if self.config.film_check else None
        self.film_check = FilmCheck.from_manifest(directory, check)
        calibration = raw.get("calibration") or {}
        # Without a calibration the score is the raw score and no number is flagged.
        self.calibrator = Calibrator.from_manifest(calibration)
        self.check_number_below = float(calibration.get("check_number_below", 0.0))

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
            edentulous = self.dentition(found, probs, prepared.tensor[0])
            teeth = [self.tooth(f) for f in found]
        if self.refiner is not None and found:
            with timer.stage("refine"):
                own_and_outline = [(f.own, f.outline) for f in found]
                shapes = self.refiner.refine(self.extras[REFINE_MODEL], gray, probs, own_and_outline,
                                             (prepared.scale_x, prepared.scale_y))
            teeth = [Tooth(t.fdi, t.score, t.raw_score, t.check_number, shape)
                     for t, shape in zip(teeth, shapes, strict=True)]
        universal = options.tooth_numbering == results_pb2.UNIVERSAL
        result = build_result(teeth, image.width, image.height, universal, edentulous)
        if self.findings:
            with timer.stage("findings"):
                models = [(model, self.extras[name]) for name, model in self.findings.items()]
                # The findings crop is set by the whole-film outlines, as the findings models were
                # validated (and the caries model trained) with; findings go to the reported teeth.
                crop_teeth = [(f.fdi, np.asarray(f.outline.polygon)) for f in found]
                add_findings(result, models, image.pixel_spacing_mm, gray, options, crop_teeth)
        return result

    def tooth(self, found: Found) -> Tooth:
        """The reported tooth of a found one: its calibrated score and whether to check its number."""
        if self.calibrator is None:
            return Tooth(found.fdi, found.raw_score, found.raw_score, False, found.outline)
        score = round(self.calibrator(raw_score=found.raw_score, number_share=found.number_share), 4)
        return Tooth(found.fdi, score, found.raw_score, score < self.check_number_below, found.outline)

    def dentition(self, found: list[Found], probs: np.ndarray, image: np.ndarray) -> list[str]:
        """The edentulous jaws ("upper", "lower") of a film with `found` teeth; 11003 for a film with
        fewer than the film check's `min_teeth` teeth that does not look like a panoramic, 12003 for
        one with no tooth found whose jaws are not both edentulous (tooth-like structures none of
        which could be outlined). `image` is the model input (H, W)."""
        if self.film_check is None:
            require(bool(found), ErrorCode.NO_USABLE_RESULT, "no teeth found on the image")
            return []
        if len(found) < self.film_check.min_teeth:
            why = self.film_check.refusal(image)
            require(not why, ErrorCode.IMAGE_CHECK_FAILED,
                    f"image does not look like a panoramic radiograph: {len(found)} teeth found and {why}")
        jaws = edentulous_jaws([f.fdi for f in found], probs,
                               self.config.edentulous_tooth_mass * self.config.tooth_area_px)
        if not found:
            seen = [j for j in JAWS if j not in jaws]
            require(not seen, ErrorCode.NO_USABLE_RESULT,
                    f"no tooth could be outlined, though the {' and '.join(seen)} jaw shows tooth-like "
                    "structures (more than one tooth's worth of the tooth model's probability)")
        return jaws

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
                share = float(c.probs[CLASS_FDI.index(fdi)]) / max(c.foreground, 1e-6)
                found.append(Found(fdi, round(c.foreground, 4), round(share, 4), mine, shape))
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
    teeth: list[Tooth], width: int, height: int, universal: bool, edentulous: list[str] | None = None
) -> results_pb2.PanoResult:
    """The contract message; teeth sorted by FDI number, missing teeth in the requested system, the
    edentulous jaws in the summary."""
    result = results_pb2.PanoResult(
        image=results_pb2.PanoImage(width=width, height=height),
        numbering=results_pb2.UNIVERSAL if universal else results_pb2.FDI,
    )
    for t in sorted(teeth, key=lambda t: t.fdi):
        shape = t.outline
        tooth = result.teeth.add(
            fdi=t.fdi, number=tooth_number(t.fdi, universal), score=t.score, bbox=shape.bbox,
            area_px=shape.area_px, universal_label=universal_label(t.fdi), raw_score=t.raw_score,
            check_number=t.check_number,
        )
        tooth.polygon.extend(shape.polygon)
    missing = missing_teeth({t.fdi for t in teeth})
    result.missing_teeth.extend(sorted(tooth_number(f, universal) for f in missing))
    result.summary.tooth_count = len(result.teeth)
    result.summary.edentulous_jaws.extend(j for j in JAWS if j in (edentulous or []))
    return result
