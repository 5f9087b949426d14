"""engines/build_engines.sh's own logic, with a stub trtexec and stub tensorrt/pycuda modules on
disk (FAKES: nothing is compiled). Checks flags per TensorRT version (weak --fp16 before 10.12,
--stronglyTyped on a converted model from 10.12, the converted model alone on 11), plan layout,
sidecar, that current plans are kept and stale ones (other precision, older recipe) rebuilt, that
it refuses a trtexec of another TensorRT than the Python package, where it looks for trtexec, and
that the timing cache lives under the models directory and never stops a build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.plans import RECIPE
from engines.sample_model import write_sample_model

ROOT = Path(__file__).resolve().parents[2]

# Prints trtexec's banner line (as `&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # ...`),
# logs build calls only, and writes the plan it is asked for.
STUB_TRTEXEC = """#!/usr/bin/env bash
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v{tag}]{build} # trtexec $*"
case " $* " in *" --help "*) exit 0;; esac
echo "$@" >> "$(dirname "$0")/calls.log"
for a in "$@"; do case "$a" in --saveEngine=*) echo plan > "${{a#--saveEngine=}}";; esac; done
"""


def banner_tag(version: str) -> tuple[str, str]:
    parts = [int(p) for p in version.split(".")]
    return str(parts[0] * 10000 + parts[1] * 100 + parts[2]), (f" [b{parts[3]}]" if len(parts) > 3 else "")


def make_stubs(tmp_path: Path, version: str, trtexec_version: str | None = None) -> Path:
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
    tag, build = banner_tag(trtexec_version or version)
    trtexec = stubs / "trtexec"
    trtexec.write_text(STUB_TRTEXEC.format(tag=tag, build=build))
    trtexec.chmod(0o755)
    return stubs


def build(models: Path, stubs: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(stubs), "TRTEXEC": str(stubs / "trtexec"),
                "PYTHON": sys.executable, "TIMING_CACHE": str(stubs / "timing.cache"), **env}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(["bash", str(ROOT / "engines/build_engines.sh"), *args, str(models)],
                          env=full_env, capture_output=True, text=True, timeout=120)


def calls(stubs: Path) -> list[str]:
    log = stubs / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def models(tmp_path: Path) -> Path:
    write_sample_model(tmp_path / "models" / "sample_conv")
    return tmp_path / "models"


def test_tensorrt10_uses_fp16_flag_and_writes_plan_and_sidecar(models, tmp_path):
    stubs = make_stubs(tmp_path, "10.8.0.43")
    done = build(models, stubs)
    assert done.returncode == 0, done.stderr
    assert "weak (--fp16 builder flag)" in done.stdout
    call = calls(stubs)[0]
    assert "--fp16" in call and "--stronglyTyped" not in call and "--minShapes=image:1x1x32x32" in call
    assert "--optShapes=image:2x1x32x32" in call and "--maxShapes=image:4x1x32x32" in call
    assert f"--timingCacheFile={stubs / 'timing.cache'}" in call
    plan_dir = models / "sample_conv" / "plans" / "10.8.0.43" / "sm89"
    assert (plan_dir / "model.plan").is_file()
    sidecar = json.loads((plan_dir / "build.json").read_text())
    assert sidecar["compute_capability"] == "sm89" and sidecar["gpu_name"] == "Stub GPU"
    assert sidecar["precision"] == "fp16" and sidecar["recipe"] == RECIPE
    # A second run keeps the current plan.
    again = build(models, stubs)
    assert "plan current" in again.stdout and len(calls(stubs)) == 1


@pytest.mark.parametrize(
    ("version", "flag", "typing"),
    [
        # Weak typing is deprecated from 10.12: strongly typed build of the converted model.
        ("10.12.0.36", "--stronglyTyped", "strong (--stronglyTyped, fp16 ONNX from engines/convert_fp16.py)"),
        # 11: always strongly typed, no precision flags.
        ("11.1.0", None, "strong (TensorRT 11, fp16 ONNX from engines/convert_fp16.py)"),
    ],
)
def test_strongly_typed_builds_from_converted_onnx(models, tmp_path, version, flag, typing):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu extra) not installed")
    stubs = make_stubs(tmp_path, version)
    done = build(models, stubs)
    assert done.returncode == 0, done.stderr
    assert typing in done.stdout
    call = calls(stubs)[0]
    assert "--fp16" not in call and "model_fp16.onnx" in call
    assert ("--stronglyTyped" in call) == (flag is not None)


def test_a_plan_of_another_precision_or_an_older_recipe_is_rebuilt(models, tmp_path):
    stubs = make_stubs(tmp_path, "10.8.0.43")
    assert build(models, stubs, PRECISION="int3").returncode == 2
    assert build(models, stubs).returncode == 0  # fp16
    switched = build(models, stubs, PRECISION="fp32")
    assert switched.returncode == 0 and "plan current" not in switched.stdout, switched.stdout
    assert len(calls(stubs)) == 2 and "--fp16" not in calls(stubs)[1]
    # A plan from before the recipe was recorded (e.g. built with the unfixed fp16 converter).
    sidecar = models / "sample_conv" / "plans" / "10.8.0.43" / "sm89" / "build.json"
    raw = json.loads(sidecar.read_text())
    del raw["recipe"]
    sidecar.write_text(json.dumps(raw))
    assert "plan current" not in build(models, stubs, PRECISION="fp32").stdout
    assert len(calls(stubs)) == 3


def test_refuses_when_trtexec_is_another_tensorrt_than_the_python_package(models, tmp_path):
    # The image's trtexec with a newer tensorrt from PyPI in the venv: plans would be misfiled.
    stubs = make_stubs(tmp_path, "11.4.0.106", trtexec_version="10.8.0.43")
    done = build(models, stubs)
    assert done.returncode == 1
    assert "trtexec is TensorRT 10.8.0 build 43 but the Python tensorrt package is 11.4.0.106" in done.stderr
    assert calls(stubs) == [] and not (models / "sample_conv" / "plans").exists()
    forced = build(models, stubs, TRT_VERSION_CHECK="0")
    assert forced.returncode == 0 and "WARNING: TRT_VERSION_CHECK=0" in forced.stderr


def test_trtexec_is_looked_for_in_opt_tensorrt_bin_too(models, tmp_path):
    stubs = make_stubs(tmp_path, "10.8.0.43")
    opt_bin = tmp_path / "opt" / "tensorrt" / "bin"
    opt_bin.mkdir(parents=True)
    (stubs / "trtexec").rename(opt_bin / "trtexec")
    path = "/usr/bin:/bin"  # no trtexec on PATH
    missing = build(models, stubs, TRTEXEC=None, PATH=path, TRTEXEC_DIRS=str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "trtexec not found" in missing.stderr
    # The default search list names the NGC image's /opt/tensorrt/bin before /usr/src/tensorrt/bin.
    default = build(models, stubs, TRTEXEC=None, PATH=path, TRTEXEC_DIRS=None)
    if default.returncode == 1:
        assert "/opt/tensorrt/bin /usr/src/tensorrt/bin" in default.stderr
    found = build(models, stubs, TRTEXEC=None, PATH=path,
                  TRTEXEC_DIRS=f"{tmp_path / 'nowhere'} {opt_bin}")
    assert found.returncode == 0, found.stderr
    assert f"trtexec {opt_bin / 'trtexec'}" in found.stdout


def test_timing_cache_goes_under_the_models_directory_and_never_stops_a_build(models, tmp_path):
    stubs = make_stubs(tmp_path, "10.8.0.43")
    done = build(models, stubs, TIMING_CACHE=None)
    assert done.returncode == 0, done.stderr
    cache_dir = models / ".trt-cache"
    assert f"--timingCacheFile={cache_dir / 'timing-10.8.0.43-sm89.cache'}" in calls(stubs)[0]
    assert (cache_dir / ".gitignore").read_text().strip() == "*"
    # A cache directory that cannot be made (here: below a regular file; even root cannot).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = build(models, stubs, TIMING_CACHE=None, TRT_CACHE_DIR=str(blocker / "cache"), FORCE="1")
    assert unwritable.returncode == 0, unwritable.stderr
    assert "WARNING: cannot write the timing cache" in unwritable.stderr
    assert "--timingCacheFile" not in calls(stubs)[1]


def test_print_paths_names_every_directory_it_writes(models, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRT_CACHE_DIR", "TIMING_CACHE")}
    done = subprocess.run(["bash", str(ROOT / "engines/build_engines.sh"), "--print-paths", "/models"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["models /models", "cache /models/.trt-cache"]
