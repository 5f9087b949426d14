"""GPU check: TensorRT against ONNX Runtime on the same inputs, per model, at the optimization
profile's minimum, optimal and maximum shapes (batch and every named axis), plus latency.

Per output it checks: finite values, the same shape, and max |trt - ort| within a tolerance
relative to that output's own peak |ort| (fp16 plans 2e-2, fp32 plans 5e-3, TensorRT using TF32
for fp32 by default): heatmaps peak at 0.15-0.56, so an absolute tolerance would pass anything. For
every rank-4 output (N, C, H, W: landmark heatmaps, segmentation logits) the peak of each map must
stay where ONNX Runtime has it: a different argmax passes only when ONNX Runtime's own value there
is within the tolerance of its maximum (a tie), so a landmark moved by one pixel fails.

ONNX Runtime runs the fp32 file with its CUDA provider when onnxruntime-gpu is installed; when it is
installed but the provider did not load (a wheel for another CUDA major than the image), the check
fails instead of timing TensorRT against a CPU baseline. Run by engines/check_gpu.sh after the
plans are built.

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
import onnxruntime as ort

from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine, default_providers
from engines.registry import discover_models
from engines.tensorrt_engine import TensorRTEngine
from engines.validation import LEVELS, example_inputs

# Of each output's peak |value| in the ONNX Runtime reference.
RELATIVE_TOLERANCE = {"fp16": 2e-2, "fp32": 5e-3}


def median_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up outside the timing
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare(name: str, got: np.ndarray, want: np.ndarray, precision: str) -> tuple[float, float, list[str]]:
    """(max |got - want|, tolerance, problems) for one output."""
    if got.shape != want.shape:
        return float("inf"), 0.0, [f"{name}: shape {list(got.shape)}, ONNX Runtime {list(want.shape)}"]
    problems = []
    if not np.isfinite(got).all():
        problems.append(f"{name}: {int((~np.isfinite(got)).sum())} non-finite values")
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    peak = float(np.max(np.abs(want64))) if want.size else 0.0
    tolerance = RELATIVE_TOLERANCE.get(precision, RELATIVE_TOLERANCE["fp16"]) * (peak or 1.0)
    diff = float(np.max(np.abs(got64 - want64))) if want.size else 0.0
    if not diff <= tolerance:
        problems.append(f"{name}: max|trt-ort| {diff:.3g} over {tolerance:.3g} "
                        f"({RELATIVE_TOLERANCE.get(precision, 2e-2):g} of its peak {peak:.3g})")
    if want.ndim == 4 and want.shape[2] * want.shape[3] > 1:
        problems += _moved_peaks(name, got64, want64, tolerance)
    return diff, tolerance, problems


def _moved_peaks(name: str, got: np.ndarray, want: np.ndarray, tie: float) -> list[str]:
    """Maps (n, c) whose argmax differs from ONNX Runtime's by more than a tie."""
    n, c, h, w = want.shape
    flat_got, flat_want = got.reshape(n * c, h * w), want.reshape(n * c, h * w)
    at_got, at_want = flat_got.argmax(axis=1), flat_want.argmax(axis=1)
    rows = np.arange(n * c)
    moved = (at_got != at_want) & (flat_want[rows, at_got] < flat_want[rows, at_want] - tie)
    if not moved.any():
        return []
    first = int(np.flatnonzero(moved)[0])
    (gy, gx), (wy, wx) = divmod(int(at_got[first]), w), divmod(int(at_want[first]), w)
    return [f"{name}: the peak of {int(moved.sum())} of {n * c} maps moved, e.g. map (n={first // c}, "
            f"c={first % c}) at (y={gy}, x={gx}) on TensorRT, (y={wy}, x={wx}) on ONNX Runtime"]


def _shape_text(inputs: dict[str, np.ndarray]) -> str:
    return ",".join("x".join(str(d) for d in a.shape) for a in inputs.values())


def check_model(model_dir: Path, runs: int) -> bool:
    manifest = ModelManifest.load(model_dir)
    trt_engine = TensorRTEngine(manifest)
    # The fp32 file, which the plan was built from; CUDA provider when onnxruntime-gpu is installed.
    ort_engine = OnnxRuntimeEngine(manifest, precision="fp32")
    ok = True
    try:
        if "CUDAExecutionProvider" in ort.get_available_providers() and \
                "CUDAExecutionProvider" not in ort_engine.providers:
            print(f"FAIL {manifest.name}: onnxruntime-gpu is installed but its CUDA provider did not load "
                  f"(a wheel for another CUDA major than this image?); ONNX Runtime runs on "
                  f"{ort_engine.providers}")
            ok = False
        precision = trt_engine.build.precision
        seen = set()
        for level in LEVELS:
            inputs = example_inputs(manifest, fill="random", level=level, seed=LEVELS.index(level))
            shapes = _shape_text(inputs)
            if shapes in seen:
                continue
            seen.add(shapes)
            got, want = trt_engine.infer(inputs), ort_engine.infer(inputs)
            report, problems = [], []
            for name in want:
                diff, tolerance, found = compare(name, got[name], want[name], precision)
                report.append(f"{name}={diff:.2e}/{tolerance:.1e}")
                problems += found
            trt_ms = median_ms(lambda inputs=inputs: trt_engine.infer(inputs), runs)
            ort_ms = median_ms(lambda inputs=inputs: ort_engine.infer(inputs), runs)
            print(
                f"{manifest.name:<22} {level:<3} {shapes:<18} max|trt-ort|/tol " + " ".join(report)
                + f"  trt {trt_ms:.2f} ms ({precision})  ort {ort_ms:.2f} ms {ort_engine.providers[0]}"
                + f"  ort/trt {ort_ms / trt_ms:.1f}x"
            )
            for problem in problems:
                print(f"FAIL {manifest.name} {level} {shapes}: {problem}")
            ok &= not problems
    finally:
        trt_engine.close()
        ort_engine.close()
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.check_gpu")
    parser.add_argument("models_dir", type=Path, nargs="?", default=Path("models"))
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"ONNX Runtime {ort.__version__} providers: {default_providers()}")
    models = discover_models(args.models_dir)
    if not models:
        print(f"no models under {args.models_dir}", file=sys.stderr)
        return 1
    results = []
    for name, path in models.items():
        try:
            results.append(check_model(path, args.runs))
        except Exception as exc:  # no plan, a CUDA error: report it and check the other models
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            results.append(False)
    verdict = "passed" if all(results) else "FAILED (difference over tolerance, moved peak or bad output)"
    print("GPU check", verdict)
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
