"""engines/check_gpu.py's comparison and report, run against the TensorRT FAKE (no GPU here)."""

from __future__ import annotations

import fake_tensorrt
from fake_tensorrt import build_fake_plan

from engines import check_gpu


def test_check_gpu_reports_difference_and_ratio(monkeypatch, manifest, capsys):
    fake_tensorrt.install(monkeypatch)
    build_fake_plan(manifest)
    assert check_gpu.main([str(manifest.directory.parent), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "sample_conv      batch 1" in out and "batch 4" in out
    assert "max|trt-ort| logits=" in out and "ort/trt" in out and "GPU check passed" in out
