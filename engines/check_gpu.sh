#!/usr/bin/env bash
# The one prepared GPU check: everything that the machines without a GPU could only check against
# fakes, in one run of under 10 minutes (step budgets 30 + 300 + 150 + 90 s). On a machine with an
# NVIDIA GPU, TensorRT with trtexec, pycuda, onnx and onnxconverter-common (the GPU image has them):
#
#   engines/check_gpu.sh [MODELS_DIR]     (default: models; the sample model when it has none)
#   env: PRECISION=fp16|fp32 (fp16)  RUNS=50  PYTHON=python3
#
#   1. python -m engines.gpu_image   one TensorRT (the Python package is trtexec's), onnxruntime-gpu
#                                    for this CUDA major
#   2. engines/build_engines.sh      plans for every model: the fp16 conversion keeps fp32 I/O, the
#                                    typing flags of this TensorRT, trtexec's version, the cache path
#   3. python -m engines.check_gpu   TensorRT vs ONNX Runtime (CUDA provider) at the profile's min,
#                                    opt and max shapes: relative tolerance, peaks in place, latency
#   4. pytest -m gpu tests/engines   the real TensorRTEngine: fp32 and fp16 plans against ONNX
#                                    Runtime, engines sharing one primary context and one logger,
#                                    a pycuda MemoryError falling back to ONNX Runtime
# Every step runs even when one before it failed (one GPU session shows everything); the exit code
# is 1 when any failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHON="$python"
models_dir="${1:-$root/models}"
failed=()

step() {  # step NAME TIMEOUT COMMAND...
  local name="$1" limit="$2" start=$SECONDS
  shift 2
  echo "=== $name (limit ${limit}s)"
  if timeout "$limit" "$@"; then
    echo "=== $name: ok in $((SECONDS - start)) s"
  else
    echo "=== $name: FAILED (exit $?) after $((SECONDS - start)) s"
    failed+=("$name")
  fi
}

if ! compgen -G "$models_dir/*/manifest.json" >/dev/null; then
  # No real models yet: check the runtime on the sample model instead, and say so.
  models_dir="$root/var/check_gpu/models"
  echo "no models found; using the sample model in $models_dir"
  "$python" -c "from pathlib import Path; from engines.sample_model import write_sample_model as w; \
w(Path('$models_dir/sample_conv'))"
fi

nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true
step "image (one TensorRT, onnxruntime-gpu CUDA major)" 30 "$python" -m engines.gpu_image
step "build plans (${PRECISION:-fp16})" 300 "$root/engines/build_engines.sh" "$models_dir"
step "TensorRT vs ONNX Runtime" 150 "$python" -m engines.check_gpu "$models_dir" --runs "${RUNS:-50}"
if "$python" -c "import pytest" 2>/dev/null; then
  step "gpu-marked tests" 90 "$python" -m pytest -q -p no:cacheprovider -m gpu "$root/tests/engines"
else
  echo "pytest not installed (dev extra): gpu-marked tests not run"
  failed+=("gpu-marked tests (pytest missing)")
fi
if (( ${#failed[@]} )); then
  printf 'GPU check FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "GPU check passed (every step)"
