"""engines/build_engines.sh's own logic, with a stub trtexec and stub tensorrt/pycuda modules on
disk (FAKES: nothing is compiled). Checks flags per TensorRT major version, plan layout, sidecar,
and that current plans are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.sample_model import write_sample_model

ROOT = Path(__file__).resolve().parents[2]

STUB_TRTEXEC = """#!/usr/bin/env bash
echo "$@" >> "$(dirname "$0")/calls.log"
for a in "$@"; do case "$a" in --saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done
"""


def make_stubs(tmp_path: Path, version: str) -> Path:
    stubs = tmp_path / "stubs"
    (stubs / "pycuda").mkdir(parents=True)
    (stubs / "tensorrt.py").write_text(f"__version__ = {version!r}\n")
    (stubs / "pycuda" / "__init__.py").write_text("")
    (stubs / "pycuda" / "driver.py").write_text(
        "def init(): pass\n"
        "class Device:\n"
        "    def __init__(self, i): pass\n"
        "    @staticmethod\n    def count(): return 1\n"
        "    def compute_capability(self): return (8, 9)\n"
        "    def name(self): return 'Stub GPU'\n"
    )
    trtexec = stubs / "trtexec"
    trtexec.write_text(STUB_TRTEXEC)
    trtexec.chmod(0o755)
    return stubs


def build(models: Path, stubs: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(stubs), "TRTEXEC": str(stubs / "trtexec"),
                "PYTHON": sys.executable, "TIMING_CACHE": str(stubs / "timing.cache"), **env}
    return subprocess.run(["bash", str(ROOT / "engines/build_engines.sh"), str(models)],
                          env=full_env, capture_output=True, text=True, timeout=120)


def test_tensorrt10_uses_fp16_flag_and_writes_plan_and_sidecar(tmp_path):
    models = tmp_path / "models"
    write_sample_model(models / "sample_conv")
    stubs = make_stubs(tmp_path, "10.8.0.43")
    done = build(models, stubs)
    assert done.returncode == 0, done.stderr
    assert "weak (--fp16 builder flag)" in done.stdout
    call = (stubs / "calls.log").read_text()
    assert "--fp16" in call and "--minShapes=image:1x1x32x32" in call
    assert "--optShapes=image:2x1x32x32" in call and "--maxShapes=image:4x1x32x32" in call
    assert f"--timingCacheFile={stubs / 'timing.cache'}" in call
    plan_dir = models / "sample_conv" / "plans" / "10.8.0.43" / "sm89"
    assert (plan_dir / "model.plan").is_file()
    sidecar = json.loads((plan_dir / "build.json").read_text())
    assert sidecar["compute_capability"] == "sm89" and sidecar["gpu_name"] == "Stub GPU"
    # A second run keeps the current plan.
    again = build(models, stubs)
    assert "plan current" in again.stdout and len((stubs / "calls.log").read_text().splitlines()) == 1


def test_tensorrt11_builds_strongly_typed_from_converted_onnx(tmp_path):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu extra) not installed")
    models = tmp_path / "models"
    write_sample_model(models / "sample_conv")
    stubs = make_stubs(tmp_path, "11.1.0")
    done = build(models, stubs)
    assert done.returncode == 0, done.stderr
    assert "strong (fp16 ONNX from engines/convert_fp16.py)" in done.stdout
    call = (stubs / "calls.log").read_text()
    assert "--fp16" not in call and "model_fp16.onnx" in call


def test_fp32_and_bad_precision(tmp_path):
    models = tmp_path / "models"
    write_sample_model(models / "sample_conv")
    stubs = make_stubs(tmp_path, "10.8.0.43")
    assert build(models, stubs, PRECISION="int3").returncode == 2
    done = build(models, stubs, PRECISION="fp32")
    assert done.returncode == 0 and "--fp16" not in (stubs / "calls.log").read_text()
