"""Smoke test of bench/pipeline_latency.py: one repetition of the pano row runs and writes its JSON.

No timing is asserted (benchmarks report ratios; the machine is shared). Skipped when the model or
../shared/data is absent.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "pipeline_latency.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("pipeline_latency", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_pano_row_one_rep(tmp_path: Path) -> None:
    bench = load_bench()
    if not (ROOT / "models" / "pano-teeth" / "manifest.json").is_file():
        pytest.skip("no model at models/pano-teeth")
    if isinstance(bench.pano_input(bench.DATA_DIR), str):
        pytest.skip(f"no UFBA-425 images under {bench.DATA_DIR} (../shared/data absent)")
    out = tmp_path / "latency.json"
    args = ["--only", "pano", "--threads", "1", "--reps", "1", "--warmup", "0", "--json", str(out)]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    assert report["skipped"] == {}
    (row,) = report["rows"]
    assert (row["task"], row["width"], row["height"], row["threads"]) == ("pano", 2943, 1435, 1)
    for stage in ("decode", "preprocess", "inference", "postprocess", "to_result", "total"):
        assert len(row["samples_ms"][stage]) == 1 and row["samples_ms"][stage][0] >= 0
    parts = sum(row["samples_ms"][s][0] for s in ("decode", "preprocess", "inference", "postprocess"))
    assert parts == pytest.approx(row["samples_ms"]["total"][0], rel=1e-6)
    assert row["engine_calls"] >= 1 and row["result_summary"].endswith("teeth")


def test_ceph_row_times_both_stages(tmp_path: Path) -> None:
    bench = load_bench()
    for name in ("ceph-landmarks", "ceph-landmarks-refine"):
        if not (ROOT / "models" / name / "manifest.json").is_file():
            pytest.skip(f"no model at models/{name}")
    if isinstance(bench.ceph_input(bench.DATA_DIR), str):
        pytest.skip(f"no ISBI images under {bench.DATA_DIR} (../shared/data absent)")
    out = tmp_path / "latency.json"
    args = ["--only", "ceph", "--threads", "1", "--reps", "1", "--warmup", "0", "--json", str(out)]
    assert bench.main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    # Stage 1 and stage 2 each call their own engine once; the pipeline times both stages.
    assert row["engine_calls"] == 2
    assert {"stage1", "stage2"} <= set(row["pipeline_stages_ms"])
    assert row["result_summary"].startswith("19 landmarks")
