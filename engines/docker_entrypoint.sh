#!/usr/bin/env bash
# GPU image entrypoint: build missing TensorRT plans for this GPU, then run the command (the worker).
# Plans are built here, at start, because they are specific to the GPU and TensorRT version; ones
# already current in the mounted models directory are kept, so only a first start pays the build.
# DENTALAI_BUILD_PLANS=0 skips the build (the worker then uses ONNX Runtime where no plan exists).
set -euo pipefail
cd /app
models_dir="${DENTALAI_WORKER_MODELS_DIR:-/app/models}"
if [[ "${DENTALAI_BUILD_PLANS:-1}" == 1 ]]; then
  # A failed build stops the container: a GPU worker silently running on CPU is the worse outcome.
  engines/build_engines.sh "$models_dir"
fi
exec "$@"
