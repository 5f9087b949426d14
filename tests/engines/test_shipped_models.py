"""Every model shipped in models/ passes engines.check_model, and the ceph pipeline runs both its
models through TensorRTEngine (against the FAKE in fake_tensorrt.py) exactly as through ONNX Runtime.

The fake runs the plan's ONNX file with ONNX Runtime, so equality shows that the pipeline's path
through the TensorRT engine (bindings, profiles of each model, the 19-patch batch of stage 2) is
the same code; real TensorRT numbers come from engines/check_gpu.sh on a GPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import build_fake_plan

from dentalai.v1 import task_pb2
from engines.check_model import check
from engines.manifest import ModelManifest
from engines.registry import discover_models
from pipelines.base_pipeline import DecodedImage
from pipelines.registry import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ISBI_151 = ROOT.parent / "shared/data/ceph/isbi2015_640x800/images/151.png"


@pytest.mark.parametrize("name", sorted(discover_models(MODELS)))
def test_shipped_model_passes_check_model(name: str) -> None:
    assert check(MODELS / name) == []


def ceph_landmarks(models_dir: Path, runtime: str, image: np.ndarray) -> tuple[np.ndarray, set[str]]:
    pipeline = load_pipeline("ceph", models_dir, runtime=runtime)
    try:
        result = pipeline.run(DecodedImage(pixels=image), task_pb2.AnalysisOptions(pixel_spacing_mm=0.3))
        return np.array([[lm.x, lm.y] for lm in result.landmarks]), {e.runtime for e in pipeline.engines}
    finally:
        for engine in pipeline.engines:
            engine.close()


@pytest.mark.skipif(not ISBI_151.is_file(), reason="../shared/data absent")
def test_ceph_both_stages_through_tensorrt_engine(monkeypatch, tmp_path: Path) -> None:
    models = tmp_path / "models"
    for name in ("ceph-landmarks", "ceph-landmarks-refine"):
        if not (MODELS / name / "manifest.json").is_file():
            pytest.skip(f"models/{name} not exported")
        shutil.copytree(MODELS / name, models / name, ignore=shutil.ignore_patterns("plans"))
    image = cv2.imread(str(ISBI_151), cv2.IMREAD_GRAYSCALE)
    want, runtimes = ceph_landmarks(models, "onnxruntime", image)
    assert runtimes == {"onnxruntime"}
    fake_tensorrt.install(monkeypatch)
    for name in ("ceph-landmarks", "ceph-landmarks-refine"):
        build_fake_plan(ModelManifest.load(models / name))
    got, runtimes = ceph_landmarks(models, "tensorrt", image)
    assert runtimes == {"tensorrt"}
    np.testing.assert_allclose(got, want, atol=0.02)
