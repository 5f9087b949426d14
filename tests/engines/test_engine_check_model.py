from __future__ import annotations

import json

from engines.check_model import check, main


def test_sample_model_passes(model_dir, capsys):
    assert check(model_dir) == []
    assert main([str(model_dir)]) == 0 and "ok" in capsys.readouterr().out


def test_stale_sha_reported_then_fixed(model_dir):
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["sha256"] = "0" * 64
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    assert "does not match manifest" in check(model_dir)[0]
    assert main([str(model_dir), "--write-sha256"]) == 0


def test_wrong_output_shape_and_missing_card(model_dir):
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["outputs"][0]["shape"] = ["batch", 5]
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    (model_dir / "MODEL_CARD.md").unlink()
    problems = check(model_dir)
    assert "MODEL_CARD.md missing" in problems
    assert any("output 'logits' at batch 1: shape [1, 3], manifest ['batch', 5]" in p for p in problems)
