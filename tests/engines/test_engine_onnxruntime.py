"""The engine contract on ONNX Runtime, with a real ONNX model made by onnx.helper."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from engines.base import Engine, EngineError
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.validation import example_inputs


@pytest.fixture
def engine(manifest):
    eng = OnnxRuntimeEngine(manifest, intra_threads=1)
    yield eng
    eng.close()


def image(batch: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(dtype)


def test_satisfies_engine_protocol(engine):
    assert isinstance(engine, Engine)
    assert engine.runtime == "onnxruntime"
    assert engine.providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("batch", [1, 4])
def test_shapes_and_dtypes_for_dynamic_batch(engine, batch):
    out = engine.infer({"image": image(batch)})
    assert set(out) == {"logits", "features"}
    assert out["logits"].shape == (batch, 3) and out["logits"].dtype == np.float32
    assert out["features"].shape == (batch, 8, 32, 32)


def test_batch_rows_are_independent(engine):
    batch = image(4)
    together = engine.infer({"image": batch})["logits"]
    alone = np.concatenate([engine.infer({"image": batch[i : i + 1]})["logits"] for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"img": image(1)}, "missing ['image'], unexpected ['img']"),
        ({"image": image(1), "extra": image(1)}, "unexpected ['extra']"),
        ({"image": image(1, np.float64)}, "dtype must be float32, got float64"),
        ({"image": image(1)[0]}, "rank must be 4"),
        ({"image": np.zeros((1, 3, 32, 32), np.float32)}, "axis 1 must be 1"),
        ({"image": np.zeros((1, 1, 32, 31), np.float32)}, "axis 3 must be 32"),
        ({"image": image(5)}, "batch 5 outside 1..4"),
        ({"image": [[0.0]]}, "expected a numpy array"),
    ],
)
def test_wrong_inputs_raise_engine_error(engine, inputs, message):
    with pytest.raises(EngineError) as info:
        engine.infer(inputs)
    assert message in str(info.value)
    assert "'sample_conv'" in str(info.value)


def test_warmup_and_close(engine):
    engine.warmup()
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.infer({"image": image(1)})


def test_concurrent_infer_from_threads(engine):
    # InferenceSession.run is thread-safe: results must equal the sequential ones.
    batch = image(2)
    expected = engine.infer({"image": batch})["logits"]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.infer({"image": batch})["logits"]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_manifest_that_misdescribes_graph_is_refused_at_load(model_dir):
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["outputs"][0]["name"] = "scores"
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(EngineError, match="ONNX graph has"):
        OnnxRuntimeEngine(ModelManifest.load(model_dir))


def test_example_inputs_follow_manifest(manifest):
    zeros = example_inputs(manifest, batch=3)
    assert zeros["image"].shape == (3, 1, 32, 32) and not zeros["image"].any()
    assert example_inputs(manifest)["image"].shape[0] == manifest.batch_opt


def test_negative_threads_rejected(manifest):
    with pytest.raises(ValueError):
        OnnxRuntimeEngine(manifest, intra_threads=-1)
