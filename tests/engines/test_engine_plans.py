from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engines.base import EngineError
from engines.manifest import ModelManifest
from engines.plans import (
    PLAN_FILE,
    RECIPE,
    SIDECAR_FILE,
    PlanBuild,
    check_plan,
    plan_dir,
    sm_tag,
    trtexec_disagreement,
    trtexec_shapes,
    unsigned_qdq,
)


def test_plan_layout(model_dir):
    assert sm_tag((8, 6)) == sm_tag("8.6") == sm_tag("86") == "sm86"
    assert plan_dir(model_dir, "10.8.0", (9, 0)) == model_dir / "plans" / "10.8.0" / "sm90"


def test_trtexec_shapes_from_manifest_batch_and_dim_ranges(model_dir):
    assert trtexec_shapes(ModelManifest.load(model_dir)) == {
        "min": "image:1x1x32x32", "opt": "image:2x1x32x32", "max": "image:4x1x32x32",
    }
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["inputs"][0]["shape"] = ["batch", 1, "height", 32]
    raw["dim_ranges"] = {"height": {"min": 16, "opt": 32, "max": 64}}
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    assert trtexec_shapes(ModelManifest.load(model_dir))["max"] == "image:4x1x64x32"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "engines.plans", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_used_by_build_engines_sh(model_dir):
    shapes = run_cli("shapes", model_dir)
    assert shapes.stdout.strip() == (
        "--minShapes=image:1x1x32x32 --optShapes=image:2x1x32x32 --maxShapes=image:4x1x32x32"
    )
    assert run_cli("is-current", model_dir, "10.8.0", "8.6").returncode == 1
    directory = plan_dir(model_dir, "10.8.0", "86")
    directory.mkdir(parents=True)
    (directory / PLAN_FILE).write_bytes(b"plan")
    written = run_cli("write-sidecar", model_dir, "10.8.0", "8.6", "fp16", "weak (--fp16)", "trtexec ...")
    assert written.returncode == 0, written.stderr
    build = PlanBuild.read(directory / SIDECAR_FILE)
    assert build.compute_capability == "sm86" and build.precision == "fp16" and build.built_at
    assert run_cli("is-current", model_dir, "10.8.0", "8.6").returncode == 0
    assert run_cli("is-current", model_dir, "10.9.0", "8.6").returncode == 1



def build_sidecar(model_dir, precision="fp16", recipe=RECIPE):
    manifest = ModelManifest.load(model_dir)
    directory = plan_dir(model_dir, "10.8.0.43", "86")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PLAN_FILE).write_bytes(b"plan")
    PlanBuild(model=manifest.name, model_version=manifest.version, onnx_sha256=manifest.sha256,
              tensorrt_version="10.8.0.43", compute_capability="sm86", precision=precision,
              typing="weak (--fp16 builder flag)", shapes={}, command="trtexec", recipe=recipe,
              ).write(directory / SIDECAR_FILE)
    return manifest, directory / PLAN_FILE


def test_plan_check_compares_precision_and_recipe_when_asked(model_dir):
    manifest, plan = build_sidecar(model_dir)
    # The engine's question (any precision will do) and the build script's (the one asked for?).
    assert check_plan(manifest, plan, "10.8.0.43", "86").precision == "fp16"
    check_plan(manifest, plan, "10.8.0.43", "86", precision="fp16", recipe=RECIPE)
    with pytest.raises(EngineError, match="was built in fp16, fp32 is asked for"):
        check_plan(manifest, plan, "10.8.0.43", "86", precision="fp32")
    assert run_cli("is-current", model_dir, "10.8.0.43", "86", "--precision", "fp16").returncode == 0
    stale = run_cli("is-current", model_dir, "10.8.0.43", "86", "--precision", "fp32")
    assert stale.returncode == 1 and "fp32 is asked for" in stale.stderr
    build_sidecar(model_dir, recipe="")  # from before the recipe was recorded
    with pytest.raises(EngineError, match=f"built by recipe 1, this build_engines.sh uses recipe {RECIPE}"):
        check_plan(manifest, plan, "10.8.0.43", "86", recipe=RECIPE)
    check_plan(manifest, plan, "10.8.0.43", "86")  # the engine still loads it


@pytest.mark.parametrize(
    ("banner", "python", "agree"),
    [
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # trtexec --help", "10.8.0.43", True),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v101303] [b9] # trtexec --help", "10.13.3.9", True),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v110400] # trtexec --help", "11.4.0.106", True),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # trtexec --help", "11.4.0.106", False),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # trtexec --help", "10.8.0.40", False),
        ("trtexec: command output without a banner", "10.8.0.43", False),
    ],
)
def test_trtexec_and_python_tensorrt_must_be_one_tensorrt(banner, python, agree):
    assert (trtexec_disagreement(banner, python) is None) == agree
    assert (run_cli("check-trtexec", banner, python).returncode == 0) == agree


MODELS = Path(__file__).resolve().parents[2] / "models"


def test_unsigned_qdq_int8_copies_are_refused_as_tensorrt_sources(model_dir, tmp_path):
    # The shipped int8 copies (training/quantize.py) quantize activations to uint8: not a TensorRT
    # graph. The fp32 files the plans are built from have no Q/DQ at all.
    copies = sorted(MODELS.glob("*/model.int8.onnx"))
    assert copies, "the shipped int8 copies moved"
    for copy in copies:
        assert unsigned_qdq(copy), copy
        assert unsigned_qdq(copy.parent / "model.onnx") == []
    # A manifest whose ONNX file is such a copy is refused by the build script's plan-job.
    raw = json.loads((model_dir / "manifest.json").read_text())
    shutil.copy(copies[0], model_dir / "model.int8.onnx")
    raw["onnx"] = "model.int8.onnx"
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    refused = run_cli("plan-job", model_dir, "10.8.0.43", "86", "fp16")
    assert refused.returncode == 1 and "unsigned (uint8)" in refused.stderr
    assert "onnx " not in refused.stdout


def test_plan_job_answers_in_one_process(model_dir):
    job = run_cli("plan-job", model_dir, "10.8.0.43", "86", "fp16")
    assert job.returncode == 0, job.stderr
    lines = dict(line.split(" ", 1) for line in job.stdout.splitlines())
    assert lines["dir"] == str(plan_dir(model_dir, "10.8.0.43", "86"))
    assert lines["current"].startswith("0 ") and lines["onnx"] == str(model_dir / "model.onnx")
    assert lines["shapes"].startswith("--minShapes=image:1x1x32x32")
    build_sidecar(model_dir)
    again = run_cli("plan-job", model_dir, "10.8.0.43", "86", "fp16")
    assert again.stdout.splitlines()[1] == "current 1 current"
