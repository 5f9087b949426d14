"""A model's int8 copy (training/quantize.py): made from the fp32 file with calibration feeds, run by
ONNX Runtime on CPU unless fp32 is asked for, and refused when it is altered or was made from
another fp32 file than the one the manifest now names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from dentalai.config import ConfigError, load_config
from engines.check_model import check, write_sha256
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.registry import load_engine
from engines.sample_model import write_sample_model
from training.quantize import quantize


def images(seed: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 1, 32, 32)).astype(np.float32)


@pytest.fixture
def quantized(model_dir: Path) -> ModelManifest:
    quantize(model_dir, [{"image": images(seed)} for seed in range(8)], "eight random batches")
    return ModelManifest.load(model_dir)


def test_int8_copy_is_quantized_from_the_fp32_file(quantized: ModelManifest) -> None:
    assert quantized.int8 is not None and quantized.int8.source_sha256 == quantized.sha256
    quantized.verify_checksum()
    ops = {node.op_type for node in onnx.load(str(quantized.int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert quantized.raw["int8"]["calibration"] == "eight random batches"
    assert check(quantized.directory) == []


def test_cpu_runs_the_int8_copy_unless_fp32_is_asked_for(quantized: ModelManifest) -> None:
    int8 = OnnxRuntimeEngine(quantized, intra_threads=1)
    fp32 = OnnxRuntimeEngine(quantized, intra_threads=1, precision="fp32")
    assert (int8.precision, fp32.precision) == ("int8", "fp32")
    x = {"image": images(99)}
    a, b = int8.infer(x)["logits"], fp32.infer(x)["logits"]
    assert not np.array_equal(a, b), "the int8 file computes in int8"
    np.testing.assert_allclose(a, b, atol=0.05 * float(np.abs(b).max()))


def test_a_model_without_int8_copy_runs_fp32(manifest: ModelManifest) -> None:
    assert manifest.int8 is None
    assert OnnxRuntimeEngine(manifest, intra_threads=1).precision == "fp32"


def test_registry_passes_the_precision_and_says_it(quantized: ModelManifest) -> None:
    engine = load_engine(quantized.directory, "onnxruntime", ort_intra_threads=1, ort_precision="fp32")
    assert engine.precision == "fp32" and "fp32" in engine.selection_reason
    assert load_engine(quantized.directory, "onnxruntime", ort_intra_threads=1).precision == "int8"
    with pytest.raises(ValueError, match="precision must be one of"):
        OnnxRuntimeEngine(quantized, precision="fp16")


def test_re_exported_fp32_file_makes_the_int8_copy_stale(quantized: ModelManifest, tmp_path: Path) -> None:
    other = write_sample_model(tmp_path / "other", seed=1)
    shutil.copy(other / "model.onnx", quantized.onnx_path)
    write_sha256(quantized.directory)  # the documented step after a re-export
    problems = check(quantized.directory)
    assert len(problems) == 1 and "quantize it again" in problems[0]


def test_altered_int8_copy_is_refused(quantized: ModelManifest) -> None:
    assert quantized.int8_path is not None
    with quantized.int8_path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="does not match manifest"):
        ModelManifest.load(quantized.directory).verify_checksum()


def test_worker_precision_setting() -> None:
    assert load_config(environ={}).worker.ort_precision == "int8"
    assert load_config(environ={"DENTALAI_WORKER__ORT_PRECISION": "fp32"}).worker.ort_precision == "fp32"
    with pytest.raises(ConfigError):
        load_config(environ={"DENTALAI_WORKER__ORT_PRECISION": "fp16"})
