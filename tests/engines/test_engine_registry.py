from __future__ import annotations

import json
import sys

import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import build_fake_plan

from engines.base import EngineError
from engines.registry import discover_models, load_engine
from engines.sample_model import write_sample_model


def test_auto_without_gpu_picks_onnxruntime_and_says_why(model_dir, caplog, monkeypatch):
    # This machine has neither tensorrt nor pycuda; make sure a stray install does not change that.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    caplog.set_level("INFO", logger="engines.registry")
    engine = load_engine(model_dir)
    assert engine.runtime == "onnxruntime"
    assert "TensorRT runtime unavailable" in engine.selection_reason
    assert "runtime onnxruntime" in caplog.text
    assert engine.infer({"image": np.zeros((1, 1, 32, 32), np.float32)})["logits"].shape == (1, 3)


def test_base_install_never_imports_tensorrt(model_dir):
    load_engine(model_dir, runtime="onnxruntime")
    assert "tensorrt" not in sys.modules and "pycuda" not in sys.modules


def test_sha256_mismatch_refused(model_dir):
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["sha256"] = "f" * 64
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(EngineError, match="does not match manifest"):
        load_engine(model_dir)


def test_tensorrt_required_but_unavailable(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match="engine 'tensorrt' configured but"):
        load_engine(model_dir, runtime="tensorrt")


def test_unknown_runtime(model_dir):
    with pytest.raises(ValueError, match="auto"):
        load_engine(model_dir, runtime="tensorflow")


def test_auto_with_fake_gpu_uses_a_matching_plan_else_onnxruntime(model_dir, manifest, monkeypatch):
    fake_tensorrt.install(monkeypatch)
    engine = load_engine(model_dir)
    assert engine.runtime == "onnxruntime" and "no plan for TensorRT 10.8.0.43" in engine.selection_reason
    build_fake_plan(manifest)
    engine = load_engine(model_dir)
    try:
        assert engine.runtime == "tensorrt" and "Fake GPU" in engine.selection_reason
    finally:
        engine.close()
    build_fake_plan(manifest, sha="0" * 64)  # stale plan: auto falls back, explicit refuses
    assert load_engine(model_dir).runtime == "onnxruntime"
    with pytest.raises(EngineError, match="built from ONNX sha256"):
        load_engine(model_dir, runtime="tensorrt")


def test_discover_models(tmp_path):
    write_sample_model(tmp_path / "a", name="a")
    write_sample_model(tmp_path / "b", name="b")
    (tmp_path / "notes").mkdir()
    assert discover_models(tmp_path) == {"a": tmp_path / "a", "b": tmp_path / "b"}
    write_sample_model(tmp_path / "c", name="other")
    with pytest.raises(ValueError, match="differs from its directory"):
        discover_models(tmp_path)
