#!/usr/bin/env bash
# On a GPU machine: build the plans, then run TensorRT and ONNX Runtime on the same inputs and print
# the max abs difference and the latency ratio, plus the gpu-marked tests. Whole run under 10 min.
#
#   engines/check_gpu.sh [MODELS_DIR]     (default: models; the sample model when it has none)
# Needs the gpu extra (tensorrt, pycuda, onnx, onnxconverter-common) and trtexec.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
models_dir="${1:-$root/models}"

if ! compgen -G "$models_dir/*/manifest.json" >/dev/null; then
  # No real models yet: check the runtime on the sample model instead, and say so.
  models_dir="$root/var/check_gpu/models"
  echo "no models found; using the sample model in $models_dir"
  "$python" -c "from pathlib import Path; from engines.sample_model import write_sample_model as w; \
w(Path('$models_dir/sample_conv'))"
fi

nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader || true
timeout 420 "$root/engines/build_engines.sh" "$models_dir"
timeout 120 "$python" -m engines.check_gpu "$models_dir" --runs "${RUNS:-50}"
if "$python" -c "import pytest" 2>/dev/null; then
  timeout 60 "$python" -m pytest -q -p no:cacheprovider -m gpu "$root/tests/engines"
else
  echo "pytest not installed (dev extra): gpu-marked tests not run"
fi
