"""Smoke test of bench/dicom_store.py: a few small instances to each target; no timing asserted
(the machine is shared: the benchmark reports ratios)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dicom_store_bench_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dicom_store.py"), "--reps", "3", "--mb", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for target in ("C-ECHO", "bare SCP", "node"):
        assert any(line.startswith(target) for line in done.stdout.splitlines()), done.stdout
    assert "node p50 / C-ECHO p50" in done.stdout
