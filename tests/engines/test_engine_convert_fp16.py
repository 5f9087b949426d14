"""engines/convert_fp16.py: fp16 inside, the source's input and output types kept, on the sample
model and on every model shipped in models/ (pano-teeth and pano-periapical end in a Resize, which
onnxconverter-common keeps in fp32 and casts back to fp16: their `logits` came out float16 and the
TensorRT engine then refused the plan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines import convert_fp16
from engines.convert_fp16 import convert, io_type_differences, io_types
from engines.registry import discover_models

pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu extra) not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the converter's fp16 range notes

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_fp16_model_keeps_fp32_io_and_close_results(model_dir, tmp_path):
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


@pytest.mark.parametrize("name", sorted(discover_models(MODELS)))
def test_every_shipped_model_keeps_its_io_types(name, tmp_path):
    source = MODELS / name / "model.onnx"
    target = tmp_path / "model_fp16.onnx"
    convert(source, target)
    converted = onnx.load(str(target))
    assert io_types(converted) == io_types(onnx.load(str(source)))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in converted.graph.initializer)  # fp16 inside
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    declared = {o.name: o.type for o in (*session.get_inputs(), *session.get_outputs())}
    reference = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    assert declared == {o.name: o.type for o in (*reference.get_inputs(), *reference.get_outputs())}


def test_a_conversion_that_changes_io_types_fails_the_build(tmp_path, monkeypatch):
    # Without the repair, onnxconverter-common's output for pano-teeth ends in a float16 logits:
    # convert must raise (build_engines.sh then stops) instead of writing that model.
    source = MODELS / "pano-teeth" / "model.onnx"
    if not source.is_file():
        pytest.skip("models/pano-teeth not shipped")
    monkeypatch.setattr(convert_fp16, "restore_io_types", lambda source, model: [])
    target = tmp_path / "model_fp16.onnx"
    with pytest.raises(ValueError, match=r"output 'logits': FLOAT -> FLOAT16"):
        convert(source, target)
    assert not target.exists()


def test_io_type_differences_names_each_changed_tensor(model_dir):
    model = onnx.load(str(model_dir / "model.onnx"))
    changed = onnx.load(str(model_dir / "model.onnx"))
    changed.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    assert io_type_differences(model, changed) == ["output 'features': FLOAT -> FLOAT16"]
    assert io_type_differences(model, model) == []
