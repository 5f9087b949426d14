"""A fine-tuned findings model's manifest names what it started from: `train --init-onnx` keeps the
start's name, version, hash and training command in the checkpoint, and export writes them. Needs
PyTorch (training only), so it is skipped where the `train` extra is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from training.run import started_from  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pano-findings"


def test_a_run_from_scratch_starts_from_nothing() -> None:
    assert started_from(None) is None


def test_the_start_is_named_by_its_manifest(tmp_path: Path) -> None:
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    manifest.update(name="pano-findings", version="9.9.9", sha256="ab" * 32)
    manifest["training"]["command"] = "train --finding caries --max-minutes 1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert started_from(tmp_path / "model.onnx") == {
        "model": "pano-findings 9.9.9", "sha256": "ab" * 32,
        "command": "train --finding caries --max-minutes 1"}
