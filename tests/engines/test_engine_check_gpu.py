"""engines/check_gpu.py's comparison and report, run against the TensorRT FAKE (no GPU here)."""

from __future__ import annotations

import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import build_fake_plan

from engines import check_gpu
from engines.check_gpu import compare
from engines.manifest import ModelManifest
from engines.sample_model import write_sample_model
from engines.tensorrt_engine import TensorRTEngine


def test_check_gpu_reports_difference_and_ratio(monkeypatch, manifest, capsys):
    fake_tensorrt.install(monkeypatch)
    build_fake_plan(manifest)
    assert check_gpu.main([str(manifest.directory.parent), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "sample_conv            min 1x1x32x32" in out and "max 4x1x32x32" in out
    assert "max|trt-ort|/tol logits=" in out and "ort/trt" in out and "GPU check passed" in out


def heatmap(centre: tuple[float, float], peak: float = 0.15, sigma: float = 2.5, size: int = 32):
    """One landmark heatmap as the ceph models make them (peaks 0.15-0.56 in practice)."""
    y, x = np.mgrid[0:size, 0:size]
    g = peak * np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2))
    return g[None, None].astype(np.float32)


def test_a_landmark_moved_by_one_pixel_fails():
    want = heatmap((12.0, 12.0))
    moved = heatmap((12.0, 13.0))
    # The old check (absolute 0.05 * max(1, peak)) let this pass: the largest difference is ~0.04.
    assert float(np.abs(moved - want).max()) < 0.05
    _diff, _tol, problems = compare("heatmaps", moved, want, "fp16")
    assert any("moved" in p and "(y=12, x=13) on TensorRT, (y=12, x=12)" in p for p in problems), problems
    assert any("max|trt-ort|" in p for p in problems)


def test_fp16_noise_on_a_heatmap_passes_and_a_tie_may_flip():
    want = heatmap((12.0, 12.5))  # two equal maxima at x=12 and x=13
    noisy = want + np.random.default_rng(0).normal(0, 2e-4, want.shape).astype(np.float32)
    assert compare("heatmaps", noisy, want, "fp16")[2] == []
    assert compare("heatmaps", want * np.float32(1.5), want, "fp16")[2]  # 50 % too high: fails
    assert compare("heatmaps", want[:, :, :-1], want, "fp16")[2][0].startswith("heatmaps: shape")
    nan = want.copy()
    nan[0, 0, 0, 0] = np.nan
    assert any("non-finite" in p for p in compare("heatmaps", nan, want, "fp32")[2])


def test_checked_at_the_profiles_min_opt_and_max_shapes(monkeypatch, tmp_path, capsys):
    fake_tensorrt.install(monkeypatch)
    model = write_sample_model(tmp_path / "models" / "dyn", name="dyn", size_range=(16, 24, 40))
    build_fake_plan(ModelManifest.load(model))
    assert check_gpu.main([str(tmp_path / "models"), "--runs", "1"]) == 0
    out = capsys.readouterr().out
    for level, shape in (("min", "1x1x16x16"), ("opt", "2x1x24x24"), ("max", "4x1x40x40")):
        assert f"dyn                    {level} {shape}" in out, out


def test_a_plan_that_moves_a_peak_fails_the_check(monkeypatch, manifest, capsys):
    fake_tensorrt.install(monkeypatch)
    build_fake_plan(manifest)

    class OnePixelOff(TensorRTEngine):
        def infer(self, inputs):
            out = super().infer(inputs)
            out["features"] = np.roll(out["features"], 1, axis=3)
            return out

    monkeypatch.setattr(check_gpu, "TensorRTEngine", OnePixelOff)
    assert check_gpu.main([str(manifest.directory.parent), "--runs", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL sample_conv min 1x1x32x32: features: the peak of" in out and "GPU check FAILED" in out


def test_a_cuda_provider_that_did_not_load_fails_the_check(monkeypatch, manifest, capsys):
    """onnxruntime-gpu for another CUDA major than the image: ONNX Runtime silently runs on CPU."""
    fake_tensorrt.install(monkeypatch)
    build_fake_plan(manifest)
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(check_gpu.ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(check_gpu, "OnnxRuntimeEngine", lambda m, precision: _CpuOnly(m))
    assert check_gpu.main([str(manifest.directory.parent), "--runs", "1"]) == 1
    assert "its CUDA provider did not load" in capsys.readouterr().out


class _CpuOnly(check_gpu.OnnxRuntimeEngine):
    def __init__(self, manifest):
        super().__init__(manifest, intra_threads=1, providers=["CPUExecutionProvider"], precision="fp32")


@pytest.mark.parametrize("level", ["min", "opt", "max"])
def test_example_inputs_at_each_level(tmp_path, level):
    manifest = ModelManifest.load(write_sample_model(tmp_path / "m", size_range=(16, 24, 40)))
    from engines.validation import example_inputs

    size = {"min": 16, "opt": 24, "max": 40}[level]
    batch = {"min": 1, "opt": 2, "max": 4}[level]
    assert example_inputs(manifest, level=level)["image"].shape == (batch, 1, size, size)
