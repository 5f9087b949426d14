"""The committed generated code in dentalai/v1 is what scripts/gen_protos.sh writes from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run(
        ["bash", str(REPO / "scripts/gen_protos.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh, committed = tmp_path / "dentalai/v1", REPO / "dentalai/v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    _match, mismatch, missing = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    stale = mismatch + missing
    assert not stale, f"dentalai/v1 is stale ({', '.join(stale)}): run scripts/gen_protos.sh and commit"
