"""Engine latency: ONNX Runtime (CPU) against PyTorch eager on the same inputs, batch 1 and 4, in
one run; TensorRT against ONNX Runtime's CUDA provider where a GPU and plans exist.

  .venv/bin/python bench/engine_latency.py [--models-dir models] [--threads 1] [--runs 30]

Models: every models/<name>/ (or, when there are none, the sample model of
engines/sample_model.py at 256x256 so that the numbers mean something). The PyTorch side is:
- for the sample model, the same network written in torch with the ONNX file's weights (outputs
  compared, so the two runtimes are known to compute the same thing);
- for a project model, the class named by the manifest's optional
  `"torch_reference": {"factory": "training.pano.model:TeethUNet", "kwargs": {...},
  "checkpoint": "training/pano/runs/best.pt"}`, with the checkpoint when present (outputs compared)
  or freshly initialized (same architecture, so the same work; outputs not compared);
- otherwise skipped, and the line says so. torch is never imported by the service.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.manifest import ModelManifest  # noqa: E402
from engines.onnxruntime_engine import OnnxRuntimeEngine  # noqa: E402
from engines.registry import discover_models  # noqa: E402
from engines.sample_model import write_sample_model  # noqa: E402
from engines.validation import example_inputs  # noqa: E402


def median_ms(call: Callable[[], object], runs: int) -> float:
    for _ in range(2):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def sample_torch_module(manifest: ModelManifest):
    """The sample model's network in torch, with the ONNX initializers as weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in onnx.load(str(manifest.onnx_path)).graph.initializer}

    class Sample(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            conv = torch.nn.functional.conv2d(image, weights["conv_w"], weights["conv_b"], padding=1)
            features = torch.relu(conv)
            logits = features.mean(dim=(2, 3)) @ weights["fc_w"] + weights["fc_b"]
            return logits, features

    return Sample().eval(), True


def reference_torch_module(manifest: ModelManifest):
    """(module, weights_loaded) from the manifest's torch_reference, or (None, reason)."""
    import torch

    if manifest.task_type == "sample":
        return sample_torch_module(manifest)
    ref = manifest.raw.get("torch_reference")
    if not ref:
        return None, "no torch_reference in manifest"
    module_name, _, attr = ref["factory"].partition(":")
    module = getattr(importlib.import_module(module_name), attr)(**ref.get("kwargs", {})).eval()
    checkpoint = ROOT / ref.get("checkpoint", "")
    if ref.get("checkpoint") and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        module.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        return module, True
    return module, False


def bench_cpu(model_dir: Path, threads: int, runs: int) -> None:
    manifest = ModelManifest.load(model_dir)
    engine = OnnxRuntimeEngine(manifest, intra_threads=threads, precision="fp32")  # the weights torch has
    try:
        import torch

        torch.set_num_threads(threads)
        torch_module, loaded = reference_torch_module(manifest)
    except ImportError:
        torch_module, loaded = None, "torch not installed"
    for batch in (1, 4):
        if not manifest.batch_min <= batch <= manifest.batch_max:
            print(f"{manifest.name:<14} batch {batch}: outside the manifest's batch range, skipped")
            continue
        inputs = example_inputs(manifest, batch=batch, fill="random")
        ort_ms = median_ms(lambda inputs=inputs: engine.infer(inputs), runs)
        line = f"{manifest.name:<14} batch {batch}  onnxruntime-cpu {ort_ms:8.2f} ms"
        if torch_module is None:
            print(f"{line}  torch: skipped ({loaded})")
            continue
        import torch

        tensors = [torch.from_numpy(inputs[spec.name]) for spec in manifest.inputs]

        def eager(tensors=tensors):
            with torch.inference_mode():
                return torch_module(*tensors)

        torch_ms = median_ms(eager, runs)
        line += f"  torch-eager {torch_ms:8.2f} ms  torch/ort {torch_ms / ort_ms:5.2f}x"
        if loaded is True:
            got = eager()
            got = got if isinstance(got, tuple | list) else (got,)
            want = engine.infer(inputs)
            diff = max(float(np.max(np.abs(g.numpy() - want[spec.name])))
                       for g, spec in zip(got, manifest.outputs, strict=False))
            line += f"  max|torch-ort| {diff:.1e}"
        else:
            line += "  (torch weights freshly initialized: same work, outputs not compared)"
        print(line)
    engine.close()


def bench_gpu(model_dir: Path, runs: int) -> None:
    from engines.onnxruntime_engine import default_providers
    from engines.tensorrt_engine import TensorRTEngine, probe

    manifest = ModelManifest.load(model_dir)
    found = probe()
    if not found.usable or not found.plan_path(model_dir).is_file():
        why = found.reason or "no plan; run engines/build_engines.sh"
        print(f"{manifest.name:<14} TensorRT vs ORT CUDA: skipped ({why})")
        return
    if "CUDAExecutionProvider" not in default_providers():
        print(f"{manifest.name:<14} ORT CUDA provider not installed (onnxruntime-gpu); comparing with CPU")
    trt_engine, ort_engine = TensorRTEngine(manifest), OnnxRuntimeEngine(manifest, precision="fp32")
    try:
        for batch in (1, 4):
            if not manifest.batch_min <= batch <= manifest.batch_max:
                continue
            inputs = example_inputs(manifest, batch=batch, fill="random")
            trt_ms = median_ms(lambda inputs=inputs: trt_engine.infer(inputs), runs)
            ort_ms = median_ms(lambda inputs=inputs: ort_engine.infer(inputs), runs)
            print(f"{manifest.name:<14} batch {batch}  tensorrt {trt_ms:8.2f} ms "
                  f"({trt_engine.build.precision})  onnxruntime {ort_engine.providers[0]} "
                  f"{ort_ms:8.2f} ms  ort/trt {ort_ms / trt_ms:5.2f}x")
    finally:
        trt_engine.close()
        ort_engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, the same for both")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    models = discover_models(args.models_dir) if args.models_dir.is_dir() else {}
    tmp = None
    if not models:
        tmp = tempfile.TemporaryDirectory()
        models = {"sample_conv": write_sample_model(Path(tmp.name) / "sample_conv", size=256, features=32)}
        print("no models found: using the sample model (1x256x256 -> conv 3x3x32 -> pool -> fc)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {os.cpu_count()} cores, load average {load:.1f}; "
          f"threads {args.threads}; median of {args.runs}")
    for path in models.values():
        bench_cpu(path, args.threads, args.runs)
    for path in models.values():
        bench_gpu(path, args.runs)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
