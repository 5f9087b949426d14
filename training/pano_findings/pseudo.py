"""Pseudo-labelled caries films for self-training (`train --finding caries --pseudo N`): films of
another site with no caries labels, labelled with what the shipped service reports on them.

The teacher is the pano pipeline as the service runs it (`pipelines.registry.load_pipeline`: tooth
model, refinement, caries model at its shipped thresholds, the ERUPTED_ONLY rule): each reported
caries finding with a score of at least PSEUDO_SCORE becomes a lesion of the film's mask; the rest of
the film is negative. The tooth outlines are the pipeline's too, as for the DC1000 films. Films: the
Tufts training films (training/pano/split_tufts.json "train"; none of them is a validation film of
any model), every k-th so that N are used. Results are cached in runs/pseudo_caries_tufts.json.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from pipelines.pano import findings
from pipelines.pano.evaluation.findings_data import Tufts
from training.pano.data import TUFTS_SPLIT_PATH
from training.pano_findings.data import ROOT, RUNS, Film, make_film, read_split

CACHE = RUNS / "pseudo_caries_tufts.json"
# Reported findings at or above this score become pseudo lesions: above the threshold of the teacher
# (1.0.0: 0.575), where its DC1000 val precision is higher, so that fewer false lesions are taught.
PSEUDO_SCORE = 0.7


def teacher_outputs(ids: list[int]) -> dict[str, dict]:
    """{film id: {"teeth": [outline, ...], "caries": [[score, outline], ...]}} in input px, cached."""
    known = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    todo = [i for i in ids if str(i) not in known]
    if todo:
        from dentalai.v1 import task_pb2
        from pipelines.base_pipeline import DecodedImage, PipelineError
        from pipelines.registry import load_pipeline

        pipeline = load_pipeline("pano", ROOT / "models")
        tufts = Tufts("periapical")
        for n, image_id in enumerate(todo):
            try:
                result = pipeline.run(DecodedImage(tufts.pixels(image_id)),
                                      task_pb2.AnalysisOptions(findings=["caries"]))
            except PipelineError:  # an edentulous film: nothing to learn from
                known[str(image_id)] = {"teeth": [], "caries": []}
                continue
            known[str(image_id)] = {
                "teeth": [findings.polygon_array(t.polygon).tolist() for t in result.teeth],
                "caries": [[f.score, findings.polygon_array(f.polygon).tolist()]
                           for f in result.findings if f.type == "caries"],
            }
            if n % 50 == 49:
                print(f"pseudo labels: {n + 1} / {len(todo)} films", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(known))
    return {str(i): known[str(i)] for i in ids}


def pseudo_films(count: int, work_width: int, zone_grow: int) -> list[Film]:
    """`count` Tufts training films (every k-th) in the caries frame, masks from the teacher."""
    train = read_split(TUFTS_SPLIT_PATH)["train"]
    ids = train[:: max(len(train) // count, 1)][:count]
    outputs = teacher_outputs(ids)
    tufts = Tufts("periapical")  # only its films are read, not its periapical polygons
    films = []
    for image_id in ids:
        out = outputs[str(image_id)]
        if not out["teeth"]:
            continue
        pixels = tufts.pixels(image_id)
        mask = np.zeros(pixels.shape[:2], np.uint8)
        for score, outline in out["caries"]:
            if score >= PSEUDO_SCORE:
                cv2.fillPoly(mask, [np.round(np.asarray(outline) * 8).astype(np.int32)], 1, shift=3)
        teeth = [np.asarray(p, np.float64) for p in out["teeth"]]
        films.append(make_film(f"tufts-{image_id}", pixels, mask.astype(bool), teeth, work_width, zone_grow))
    return films
