"""Smoke test of bench/artifacts_latency.py: one repetition runs and writes its JSON (no timing is
asserted; the bench prints ratios against a baseline of the same run)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_one_rep_writes_both_rows(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    bench = str(ROOT / "bench" / "artifacts_latency.py")
    subprocess.run(
        [sys.executable, bench, "--reps", "1", "--json", str(out)], check=True, cwd=ROOT, timeout=300
    )
    rows = json.loads(out.read_text())
    assert [r["case"] for r in rows] == ["ceph", "pano"]
    for row in rows:
        assert set(row["bytes"]) == {"overlay.png", "report.pdf", "report.dcm", "overlay.dcm", "image.dcm"}
        assert row["total_ms"] > 0 and row["ref_ms"] > 0
