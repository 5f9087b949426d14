from __future__ import annotations

import json
import subprocess
import sys

from engines.manifest import ModelManifest
from engines.plans import PLAN_FILE, SIDECAR_FILE, PlanBuild, plan_dir, sm_tag, trtexec_shapes


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
