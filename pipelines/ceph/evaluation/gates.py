"""Measure the ceph pipeline's refusal gates (11003 "not a cephalogram", 12003 "no credible
landmarks") on what they must pass and what they must refuse, with the models as a worker loads them.

    .venv/bin/python -m pipelines.ceph.evaluation.gates

Prints, per set, the mean stage-1 peak that the gates read (CephConfig.not_ceph_confidence and
min_mean_confidence) and the codes the pipeline answered: ISBI validation 151-200 and Hamedan
071-100 must pass; UFBA-425 and DC1000 panoramics (resized to a cephalogram's aspect, so that the
input check lets them reach the model) and noise must be refused.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.ceph.evaluation.eval_ceph import ROOT, load_ceph

DATA = ROOT.parent / "shared" / "data"


def sets(limit: int) -> dict[str, list[np.ndarray]]:
    def read(paths: list[Path], size: tuple[int, int] | None = None) -> list[np.ndarray]:
        out = []
        for p in paths[:limit]:
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            out.append(img if size is None else cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        return out

    isbi = sorted((DATA / "ceph/isbi2015_640x800/images").glob("*.png"))
    dc1000 = sorted((DATA / "pano/dc1000_caries/images").glob("*.jpg"))
    hamedan = sorted((DATA / "ceph/hamedan/images").glob("*"))
    rng = np.random.default_rng(0)
    return {
        "isbi val 151-200 (pass)": read([p for p in isbi if 151 <= int(p.stem) <= 200]),
        "hamedan 071-100 (pass)": read([p for p in hamedan if 71 <= int(p.stem) <= 100]),
        "ufba pano (refuse)": read(sorted((DATA / "pano/ufba425/images").glob("*.jpg")), (800, 1000)),
        "dc1000 pano (refuse)": read(dc1000, (1000, 1250)),
        "noise (refuse)": [rng.integers(0, 256, (1000, 800), dtype=np.uint8) for _ in range(min(limit, 5))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=50, help="images per set")
    args = ap.parse_args()
    pipe = load_ceph(ROOT / "models", threads=1)
    cfg = pipe.config
    print(
        f"gates: 11003 below {cfg.not_ceph_confidence}, 12003 below {cfg.min_mean_confidence} "
        "(stage-1 mean peak)"
    )
    for name, images in sets(args.limit).items():
        if not images:
            print(f"{name}: no images")
            continue
        means, codes = [], Counter()
        for img in images:
            means.append(float(pipe.predict(img).stage1_confidence.mean()))
            try:
                pipe.run(DecodedImage(pixels=img), task_pb2.AnalysisOptions())
                codes["ok"] += 1
            except PipelineError as exc:
                codes[int(exc.code)] += 1
        m = np.array(means)
        print(
            f"{name}: {len(m)} images, mean stage-1 peak min {m.min():.2f} median {np.median(m):.2f} "
            f"max {m.max():.2f}; answers {dict(codes)}"
        )


if __name__ == "__main__":
    main()
