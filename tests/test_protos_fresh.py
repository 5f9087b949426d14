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


def test_buf_config_is_at_the_root_with_protos_as_its_module() -> None:
    # The design card's layout; gen_protos.sh's -I protos gives the same file paths as buf's module.
    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "buf.yaml").read_text())
    assert config["modules"] == [{"path": "protos"}] and not (root / "protos" / "buf.yaml").exists()
    assert "-I \"$root/protos\"" in (root / "scripts" / "gen_protos.sh").read_text()
