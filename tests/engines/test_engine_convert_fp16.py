from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from engines.convert_fp16 import convert


def test_fp16_model_keeps_fp32_io_and_close_results(model_dir, tmp_path):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu extra) not installed")
    target = tmp_path / "model_fp16.onnx"
    convert(model_dir / "model.onnx", target)
    fp32 = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [i.type for i in fp16.get_inputs()] == ["tensor(float)"]
    assert {o.type for o in fp16.get_outputs()} == {"tensor(float)"}
    image = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    want, got = fp32.run(None, {"image": image}), fp16.run(None, {"image": image})
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-2, atol=2e-2)
