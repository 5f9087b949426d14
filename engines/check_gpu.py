"""GPU check: TensorRT and ONNX Runtime on the same inputs, per model and batch size.

Prints the max abs difference of every output and the latency ratio (ONNX Runtime / TensorRT,
median of timed runs after warm-up). Run by engines/check_gpu.sh after the plans are built.

  python -m engines.check_gpu [MODELS_DIR] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine, default_providers
from engines.registry import discover_models
from engines.tensorrt_engine import TensorRTEngine
from engines.validation import example_inputs


def median_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up outside the timing
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def check_model(model_dir: Path, runs: int) -> bool:
    manifest = ModelManifest.load(model_dir)
    trt_engine = TensorRTEngine(manifest)
    # The fp32 file, which the plan was built from; CUDA provider when onnxruntime-gpu is installed.
    ort_engine = OnnxRuntimeEngine(manifest, precision="fp32")
    ok = True
    try:
        precision = trt_engine.build.precision
        tolerance = 5e-2 if precision == "fp16" else 1e-3
        for batch in sorted({manifest.batch_min, manifest.batch_max}):
            inputs = example_inputs(manifest, batch=batch, fill="random")
            got, want = trt_engine.infer(inputs), ort_engine.infer(inputs)
            diffs = {n: float(np.max(np.abs(got[n].astype(np.float64) - want[n]))) for n in want}
            worst = max(diffs.values())
            ok &= all(np.isfinite(got[n]).all() and got[n].shape == want[n].shape for n in want)
            ok &= worst <= tolerance * max(1.0, max(float(np.max(np.abs(w))) for w in want.values()))
            trt_ms = median_ms(lambda inputs=inputs: trt_engine.infer(inputs), runs)
            ort_ms = median_ms(lambda inputs=inputs: ort_engine.infer(inputs), runs)
            print(
                f"{manifest.name:<16} batch {batch:<3} max|trt-ort| "
                + " ".join(f"{n}={d:.2e}" for n, d in diffs.items())
                + f"  trt {trt_ms:.2f} ms ({precision})  ort {ort_ms:.2f} ms {ort_engine.providers[0]}"
                + f"  ort/trt {ort_ms / trt_ms:.1f}x"
            )
    finally:
        trt_engine.close()
        ort_engine.close()
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.check_gpu")
    parser.add_argument("models_dir", type=Path, nargs="?", default=Path("models"))
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"ONNX Runtime providers: {default_providers()}")
    models = discover_models(args.models_dir)
    if not models:
        print(f"no models under {args.models_dir}", file=sys.stderr)
        return 1
    results = [check_model(path, args.runs) for path in models.values()]
    print("GPU check", "passed" if all(results) else "FAILED (difference over tolerance or bad output)")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
