"""Real TensorRT on a real GPU: builds plans for the sample model with trtexec (engines/build_engines.sh),
then compares them with ONNX Runtime, and checks what the fake could only model: engines of one
process sharing the device's primary context and one TensorRT logger, and a real pycuda
MemoryError during setup falling back to ONNX Runtime. Skipped (with the reason) wherever
TensorRT, pycuda, a GPU or trtexec is missing; run by engines/check_gpu.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from engines.check_gpu import compare
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.sample_model import write_sample_model

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]


def _probe():
    from engines.tensorrt_engine import probe

    return probe()


def _build(models: Path, precision: str) -> None:
    env = {**os.environ, "PRECISION": precision}
    done = subprocess.run(["bash", str(ROOT / "engines/build_engines.sh"), str(models)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def gpu_models(tmp_path_factory):
    """{"fp32": model dir, "fp16": model dir}, each with a plan built in that precision."""
    found = _probe()
    if not found.usable:
        pytest.skip(f"no TensorRT GPU here: {found.reason}")
    if not (os.environ.get("TRTEXEC") or shutil.which("trtexec")
            or any(Path(d, "trtexec").exists() for d in ("/opt/tensorrt/bin", "/usr/src/tensorrt/bin"))):
        pytest.skip("trtexec not found (TRTEXEC, PATH, /opt/tensorrt/bin or /usr/src/tensorrt/bin)")
    dirs = {}
    for precision in ("fp32", "fp16"):
        models = tmp_path_factory.mktemp(f"models_{precision}")
        write_sample_model(models / "sample_conv")
        write_sample_model(models / "second", name="second", seed=3)
        _build(models, precision)
        dirs[precision] = models
    return dirs


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_onnxruntime(gpu_models, precision):
    from engines.registry import load_engine

    model = gpu_models[precision] / "sample_conv"
    engine = load_engine(model, runtime="tensorrt")
    reference = OnnxRuntimeEngine(ModelManifest.load(model), providers=["CPUExecutionProvider"])
    try:
        assert engine.build.precision == precision
        engine.warmup()
        for batch in (1, 4):
            image = np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)
            got, want = engine.infer({"image": image}), reference.infer({"image": image})
            for name in want:
                assert got[name].dtype == np.float32  # fp32 I/O whatever the plan computes in
                assert compare(name, got[name], want[name], precision)[2] == []
    finally:
        engine.close()


def test_engines_share_one_primary_context_and_one_logger(gpu_models):
    import pycuda.driver as cuda

    from engines import tensorrt_engine
    from engines.tensorrt_engine import TensorRTEngine, shared_context_users

    models = gpu_models["fp32"]
    engines = [TensorRTEngine(ModelManifest.load(models / name)) for name in ("sample_conv", "second")]
    try:
        assert shared_context_users() == 2 and tensorrt_engine._LOGGER is not None
        image = np.ones((2, 1, 32, 32), np.float32)
        errors = []

        def work(engine):
            try:
                for _ in range(5):
                    engine.infer({"image": image})
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(e,)) for e in engines * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        # Nothing stays current on the calling thread: the owner threads push and pop.
        assert cuda.Context.get_current() is None
    finally:
        for engine in engines:
            engine.close()
    assert shared_context_users() == 0


def test_a_pycuda_memory_error_falls_back_to_onnxruntime(gpu_models, monkeypatch):
    import pycuda.driver as cuda

    from engines.registry import load_engine

    def no_memory(nbytes):
        raise cuda.MemoryError("cuMemAlloc failed: out of memory (injected)")

    monkeypatch.setattr(cuda, "mem_alloc", no_memory)
    engine = load_engine(gpu_models["fp32"] / "sample_conv")  # auto
    assert engine.runtime == "onnxruntime" and "MemoryError" in engine.selection_reason
