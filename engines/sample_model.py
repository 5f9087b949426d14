"""A tiny ONNX model with a manifest, made with onnx.helper: tests, benches and GPU checks use it
when models/ holds no real model. Needs the `onnx` package (dev and gpu extras), imported lazily.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


def write_sample_model(
    model_dir: Path,
    name: str = "sample_conv",
    *,
    channels: int = 1,
    size: int = 32,
    features: int = 8,
    classes: int = 3,
    batch: tuple[int, int, int] = (1, 2, 4),
    seed: int = 0,
    size_range: tuple[int, int, int] | None = None,
) -> Path:
    """Write model.onnx (Conv 3x3 -> Relu -> global average -> MatMul + Add), manifest.json and
    MODEL_CARD.md under `model_dir`; the batch axis is dynamic, and with `size_range` (min, opt, max)
    height and width too (manifest `dim_ranges`). Returns `model_dir`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((features, channels, 3, 3)).astype(np.float32) * 0.2
    conv_b = rng.standard_normal(features).astype(np.float32) * 0.1
    fc_w = rng.standard_normal((features, classes)).astype(np.float32)
    fc_b = rng.standard_normal(classes).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "fc_w"], ["mm"]),
        helper.make_node("Add", ["mm", "fc_b"], ["logits"]),
        # A second output of another shape, so multi-output handling is exercised too.
        helper.make_node("Identity", ["relu"], ["features"]),
    ]
    height: int | str = size if size_range is None else "height"
    width: int | str = size if size_range is None else "width"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, height, width])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features, height, width]),
        ],
        initializer=[
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(fc_w, "fc_w"),
            numpy_helper.from_array(fc_b, "fc_b"),
        ],
    )
    # Opset 17 / IR 8: read by every onnxruntime >= 1.14 and TensorRT 10's parser.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    model_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = model_dir / "model.onnx"
    onnx.save(model, onnx_path)
    manifest = {
        "name": name,
        "version": "0.0.1-sample",
        "task_type": "sample",
        "onnx": "model.onnx",
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", channels, height, width]}],
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": ["batch", classes]},
            {"name": "features", "dtype": "float32", "shape": ["batch", features, height, width]},
        ],
        "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "preprocessing": {"mean": 0.0, "std": 1.0},
    }
    if size_range is not None:
        bounds = dict(zip(("min", "opt", "max"), size_range, strict=True))
        manifest["dim_ranges"] = {"height": bounds, "width": bounds}
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(
        f"# {name}\n\nRandom weights made by engines/sample_model.py for engine tests; not a real model.\n"
    )
    return model_dir
