"""Real TensorRT on a real GPU: builds a plan for the sample model with trtexec, then compares it
with ONNX Runtime. Skipped (with the reason) wherever TensorRT, pycuda, a GPU or trtexec is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.sample_model import write_sample_model

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]


def _probe():
    from engines.tensorrt_engine import probe

    return probe()


@pytest.fixture(scope="module")
def gpu_model(tmp_path_factory):
    found = _probe()
    if not found.usable:
        pytest.skip(f"no TensorRT GPU here: {found.reason}")
    if not (shutil.which("trtexec") or Path("/usr/src/tensorrt/bin/trtexec").exists()):
        pytest.skip("trtexec not found (PATH or /usr/src/tensorrt/bin)")
    models = tmp_path_factory.mktemp("models")
    write_sample_model(models / "sample_conv")
    env = {**os.environ, "PRECISION": "fp32"}  # fp32 so the comparison tolerance stays tight
    done = subprocess.run(["bash", str(ROOT / "engines/build_engines.sh"), str(models)], env=env,
                          capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    return models / "sample_conv"


def test_tensorrt_matches_onnxruntime(gpu_model):
    from engines.registry import load_engine

    engine = load_engine(gpu_model, runtime="tensorrt")
    reference = OnnxRuntimeEngine(ModelManifest.load(gpu_model), providers=["CPUExecutionProvider"])
    try:
        engine.warmup()
        for batch in (1, 4):
            image = np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)
            got, want = engine.infer({"image": image}), reference.infer({"image": image})
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-3)
    finally:
        engine.close()
