"""Quantize shipped pano models to int8 for ONNX Runtime on CPU (static, QDQ, per channel).

    .venv/bin/python -m training.quantize --model pano-teeth-refine --model pano-findings

Each model's fp32 `model.onnx` stays what TensorRT builds from; this writes `model.int8.onnx`
beside it and the manifest's `int8` block (file, sha256, the fp32 sha256 it came from, how it was
made), which `OnnxRuntimeEngine` runs on CPU (`worker.ort_precision: int8`). The same inputs give
the same file (calibration and quantizer are deterministic).

Calibration is the models' inputs as the service makes them: the pano pipeline, on the fp32 files,
runs on fixed training films (no validation film), 24 in all from three devices: every 75th of the
Tufts training split, every 40th of UFBA-425's (by file name) and every 8th of the DC1000 caries
split's, with every finding type asked for: a type off by default (`periapical`) or a fresh export
that `eval_findings --write-manifest` has not yet turned on is calibrated on what it reads when a
client asks for it. Every call to each model is recorded; a model the pipeline never called is
refused. Activation ranges are the min and max over those calls. The first and the last convolution
stay fp32: the first reads the standardised film, the last writes the logits the pipeline
thresholds; in a first trial (calibration films picked slightly differently) quantizing them too
cost Tufts val detection F1 0.9568 -> 0.9551 and Dice 0.8816 -> 0.8803 with the tooth and refinement
models both in int8. Which models ship a copy, and their accuracy in int8 and fp32, is in their
cards and docs/engines.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime

from dentalai.contract import FINDING_TYPES
from dentalai.v1 import task_pb2
from engines.base import Engine
from engines.manifest import ModelManifest, check_sha256
from grpc_server.decode import decode_image
from pipelines import registry

ROOT = Path(__file__).resolve().parents[1]
PANO_DATA = ROOT.parent / "shared" / "data" / "pano"
INT8_FILE = "model.int8.onnx"
# Every step-th training film of each set (`calibration_films` says in which order).
CALIBRATION_STEPS = {"tufts": 75, "ufba425": 40, "dc1000_caries": 8}
MAX_PIXELS = 50_000_000


def calibration_films(data: Path = PANO_DATA) -> list[Path]:
    """The fixed calibration films, training splits only."""
    tufts_ids = json.loads((ROOT / "training" / "pano" / "split_tufts.json").read_text())["train"]
    tufts = _file_names(data / "tufts")
    films = [data / "tufts" / "images" / tufts[i] for i in tufts_ids[:: CALIBRATION_STEPS["tufts"]]]
    ufba_ids = set(json.loads((ROOT / "training" / "pano" / "split.json").read_text())["train"])
    ufba = _file_names(data / "ufba425")
    films += [data / "ufba425" / "images" / name
              for name in sorted(ufba[i] for i in ufba_ids)[:: CALIBRATION_STEPS["ufba425"]]]
    dc_ids = json.loads((ROOT / "training" / "pano_findings" / "split.json").read_text())["train"]
    dc_step = CALIBRATION_STEPS["dc1000_caries"]
    films += [data / "dc1000_caries" / "images" / f"{i}.jpg" for i in dc_ids[::dc_step]]
    return films


def _file_names(data_dir: Path) -> dict[int, str]:
    coco = json.loads((data_dir / "annotations.json").read_text())
    return {im["id"]: im["file_name"] for im in coco["images"]}


class RecordingEngine:
    """An engine that keeps a copy of every input it is given (calibration only)."""

    def __init__(self, engine: Engine, calls: list[dict[str, np.ndarray]]) -> None:
        self.inner = engine
        self.manifest = engine.manifest
        self.runtime = engine.runtime
        self.calls = calls

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append({k: np.array(v, copy=True) for k, v in inputs.items()})
        return self.inner.infer(inputs)

    def warmup(self) -> None:
        self.inner.warmup()

    def close(self) -> None:
        self.inner.close()


def record_pano_inputs(models_dir: Path, films: Sequence[Path]) -> dict[str, list[dict[str, np.ndarray]]]:
    """{model name: its input feeds, call by call} as the pano pipeline (fp32, one thread) makes them."""
    pipeline = registry.load_pipeline("pano", models_dir, threads=1, precision="fp32")
    calls: dict[str, list[dict[str, np.ndarray]]] = {}
    try:
        first = pipeline.engine
        pipeline.engine = RecordingEngine(first, calls.setdefault(first.manifest.name, []))
        pipeline.extras = {name: RecordingEngine(e, calls.setdefault(name, []))
                           for name, e in pipeline.extras.items()}
        # Every finding type, on by default or not (see the module doc).
        options = task_pb2.AnalysisOptions(findings=FINDING_TYPES)
        for film in films:
            pipeline.run(decode_image(film.read_bytes(), MAX_PIXELS), options)
    finally:
        for engine in pipeline.engines:
            engine.close()
    return calls


def quantize(model_dir: Path, feeds: Iterable[Mapping[str, np.ndarray]], about: str) -> Path:
    """Write `model_dir`/model.int8.onnx from its fp32 file with these calibration feeds, and the
    manifest's `int8` block; -> the int8 file."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    manifest = ModelManifest.load(model_dir)
    check_sha256(manifest.onnx_path, manifest.sha256)  # the int8 copy, if any, is about to be replaced

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.it, None)
            return None if item is None else dict(item)

    out = model_dir / INT8_FILE
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Graph cleanup and shape inference first, as the quantizer's documentation asks; symbolic
        # shape inference is skipped (dynamic spatial sizes defeat it on the findings models).
        with contextlib.chdir(tmp):  # it leaves temporary files in the working directory
            quant_pre_process(str(manifest.onnx_path.resolve()), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        convs = [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
        quantize_static(
            str(prepared), str(out), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=[convs[0], convs[-1]],
        )
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw["int8"] = {
        "onnx": INT8_FILE,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "source_sha256": manifest.sha256,
        "method": "onnxruntime.quantization.quantize_static: QDQ, weights int8 per channel, activations "
                  f"uint8 (MinMax), first and last convolution fp32; onnxruntime {onnxruntime.__version__}",
        "calibration": about,
        "command": f"python -m training.quantize --model {manifest.name}",
    }
    (model_dir / "manifest.json").write_text(json.dumps(raw, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="pano model name (repeatable)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args(argv)
    films = calibration_films()
    calls = record_pano_inputs(args.models_dir, films)
    about = (f"{len(films)} training films through the pano pipeline (fp32): every "
             + ", ".join(f"{step}th of {name}" for name, step in CALIBRATION_STEPS.items())
             + " training split; every call to the model")
    for name in args.model:
        if not calls.get(name):  # not a model of the pano pipeline, or never reached on these films
            parser.error(f"{name}: the pano pipeline made no call to it")
        out = quantize(args.models_dir / name, calls[name], f"{about} ({len(calls[name])} calls)")
        size = out.stat().st_size / 1e6
        print(f"{name}: wrote {out} ({size:.2f} MB) from {len(calls[name])} calibration calls")


if __name__ == "__main__":
    main()
