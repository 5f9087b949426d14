"""Wrong kind of image, both task types: what each pipeline answers for every film of the other kind
in ../shared/data, for generated non-radiographs and photographs, and for the validation films of
its own kind (false refusals must stay at 0).

    .venv/bin/python -m pipelines.pano.evaluation.wrong_kind [--out FILE] [--limit N]

pano: the tooth model with its film check (the refinement and findings stages cannot change the
answer's code and are left out for speed); ceph: the pipeline as a worker loads it. Each image is
sent as it is and, for the other kind's films, also stretched to the task's own aspect ratio (2:1 for
pano, 4:5 for ceph), so that the input check's aspect rule cannot refuse it and the content check
alone must. Answers are counted by code and by the check that gave them (the message): "input"
(size, aspect, contrast: the check both task types share, base_pipeline.check_radiograph), "film"
(pano's film check), "model" (ceph: no cephalogram in the landmark model's response), or
"succeeded" (for pano with "edentulous" when both jaws were called so).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dentalai.v1 import task_pb2
from engines.registry import load_engine
from pipelines.base_pipeline import DecodedImage, Pipeline, PipelineError
from pipelines.ceph.evaluation.eval_ceph import load_ceph
from pipelines.pano.evaluation import non_radiographs
from pipelines.pano.evaluation.film_check_fit import DATA, ROOT, ceph_films, pano_films
from pipelines.pano.pipeline import PanoPipeline

PANO_SIZE = (2000, 1000)
CEPH_SIZE = (800, 1000)


def answer(pipeline: Pipeline, pixels: np.ndarray) -> str:
    """How the pipeline answers: "succeeded", "succeeded edentulous", or "<code> <check>"."""
    try:
        result = pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
    except PipelineError as exc:
        message = exc.message
        check = (
            "film"
            if "panoramic radiograph" in message
            else "model"
            if "lateral cephalogram" in message
            else "input"
            if any(w in message for w in ("aspect", "too small", "blank", "2-D"))
            else "other"
        )
        return f"{int(exc.code)} {check}"
    if (
        getattr(result, "summary", None) is not None
        and len(getattr(result.summary, "edentulous_jaws", [])) == 2
    ):
        return "succeeded edentulous"
    return "succeeded"


def all_pano_films() -> Iterator[tuple[str, Path]]:
    for split in ("train", "val"):
        for name, _, path in pano_films(split):
            yield name, path


def all_ceph_films() -> Iterator[tuple[str, Path]]:
    for train in (True, False):
        yield from ceph_films(train)


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def stretch(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def count(pipeline: Pipeline, images: Iterator[tuple[str, np.ndarray]]) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for group, pixels in images:
        out.setdefault(group, Counter())[answer(pipeline, pixels)] += 1
    return out


def print_rows(title: str, rows: dict[str, Counter]) -> None:
    print(title)
    for group, c in rows.items():
        n = sum(c.values())
        refused = sum(v for k, v in c.items() if k.startswith("11003"))
        print(
            f"  {group:44s} {n:4d}  11003 {refused:4d} ({refused / n:.0%})  "
            + ", ".join(f"{k}: {v}" for k, v in sorted(c.items()))
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="at most this many films per set (0: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    def limited(items: Iterator[tuple[str, Path]]) -> Iterator[tuple[str, Path]]:
        seen: Counter = Counter()
        for group, path in items:
            seen[group] += 1
            if not args.limit or seen[group] <= args.limit:
                yield group, path

    pano = PanoPipeline(load_engine(ROOT / "models" / "pano-teeth", "onnxruntime", args.threads, "int8"))
    ceph = load_ceph(ROOT / "models", args.threads)
    report: dict[str, dict[str, Counter]] = {}
    report["pano: validation panoramics (must not be refused)"] = count(
        pano, ((f"{g} val", read(p)) for g, _, p in pano_films("val"))
    )
    report["pano: every cephalogram, as it is"] = count(
        pano, ((g, read(p)) for g, p in limited(all_ceph_films()))
    )
    report["pano: every cephalogram, stretched to 2:1"] = count(
        pano, ((g, stretch(read(p), PANO_SIZE)) for g, p in limited(all_ceph_films()))
    )
    report["pano: generated non-radiographs"] = count(pano, _generated(PANO_SIZE, (1.0, 3.0)))
    report["pano: photographs"] = count(pano, (("photo", img) for _, img in non_radiographs.photos()))
    report["ceph: validation cephalograms (must not be refused)"] = count(
        ceph, ((f"{g} val", read(p)) for g, p in ceph_films(train=False))
    )
    report["ceph: every panoramic, as it is"] = count(
        ceph, ((g, read(p)) for g, p in limited(all_pano_films()))
    )
    report["ceph: every panoramic, stretched to 4:5"] = count(
        ceph, ((g, stretch(read(p), CEPH_SIZE)) for g, p in limited(all_pano_films()))
    )
    report["ceph: generated non-radiographs"] = count(ceph, _generated(CEPH_SIZE, (0.6, 1.3)))
    report["ceph: photographs"] = count(
        ceph, (("photo", img) for _, img in non_radiographs.photos(aspect=(0.6, 1.2)))
    )
    for title, rows in report.items():
        print_rows(title, rows)
    if args.out:
        args.out.write_text(
            json.dumps({t: {g: dict(c) for g, c in r.items()} for t, r in report.items()}, indent=1) + "\n"
        )


def _generated(size: tuple[int, int], aspect: tuple[float, float]) -> Iterator[tuple[str, np.ndarray]]:
    """Each kind at `size`, then 80 random variants (seed 2; film_check_fit reports seed 1)."""
    for kind in non_radiographs.KINDS:
        yield f"{kind} (one)", non_radiographs.image(kind, *size)
    for kind, img in non_radiographs.random_images(seed=2, n=80, aspect=aspect, width=size[0]):
        yield f"{kind} (10 variants)", img


if __name__ == "__main__":
    assert DATA.exists(), f"no shared data at {DATA}"
    main()
