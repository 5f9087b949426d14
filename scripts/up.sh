#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole service on this machine:
# a local redis-server, the gRPC server, the REST bridge on :8000, a worker (ONNX Runtime on CPU),
# the callback dispatcher and the tester UI. Ctrl-C stops them all.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"  # models/ and var/ are relative to the repository
DENTALAI_SKIP_BROWSER=1 "$root/scripts/setup.sh"
exec "$root/.venv/bin/dentalai" up "$@"
