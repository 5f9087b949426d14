#!/usr/bin/env bash
# Regenerates the Python protobuf and gRPC code in dentalai/v1/ from protos/.
# tests/test_protos_fresh.py fails when the committed code differs from what this writes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="${1:-$root}"
mkdir -p "$out/dentalai/v1"
"$python" -m grpc_tools.protoc -I "$root/protos" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$root"/protos/dentalai/v1/*.proto
touch "$out/dentalai/v1/__init__.py"
