#!/usr/bin/env bash
# Build a TensorRT plan for every model in a model repository, for the GPU of this machine.
#
#   engines/build_engines.sh [MODELS_DIR]        (default: models)
#   env: PRECISION=fp16|fp32 (fp16)  FORCE=1 (rebuild current plans)  GPU=0  PYTHON=python3
#        TRTEXEC=/path/to/trtexec   TIMING_CACHE=var/trt/timing-<trt>-sm<cc>.cache
#
# Plans are valid only for the TensorRT version and compute capability that built them, so each
# goes to MODELS_DIR/<name>/plans/<trt-version>/sm<cc>/model.plan with build.json beside it; a
# plan that is current for its ONNX sha256 is kept. Shapes (min/opt/max) come from the manifest.
# TensorRT 10: fp16 through the --fp16 builder flag (weak typing).
# TensorRT 11: networks are always strongly typed and --fp16 is gone, so fp16 comes from an ONNX
#              converted by engines/convert_fp16.py (fp16 inside, fp32 inputs and outputs).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
models_dir="$(cd "${1:-$root/models}" && pwd)"
precision="${PRECISION:-fp16}"
gpu="${GPU:-0}"
python="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"

case "$precision" in fp16|fp32) ;; *) echo "PRECISION must be fp16 or fp32, got $precision" >&2; exit 2;; esac
trtexec="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
[[ -x "$trtexec" ]] || { echo "trtexec not found (PATH, /usr/src/tensorrt/bin or TRTEXEC=)" >&2; exit 1; }

# The same probe the engine uses, so the plan directory is the one it will look in.
read -r trt_version cc gpu_name < <("$python" - "$gpu" <<'PY'
import sys
from engines.tensorrt_engine import probe
p = probe(int(sys.argv[1]))
if not p.usable:
    sys.exit(f"cannot build plans: {p.reason}")
print(p.trt_version, "%d%d" % p.compute_capability, p.gpu_name.replace(" ", "_"))
PY
)
[[ -n "${cc:-}" ]] || exit 1  # the probe said why
major="${trt_version%%.*}"
if (( major >= 11 )); then mode="strong"; else mode="weak"; fi
timing_cache="${TIMING_CACHE:-$root/var/trt/timing-$trt_version-sm$cc.cache}"
mkdir -p "$(dirname "$timing_cache")"
echo "TensorRT $trt_version on $gpu_name (sm$cc), precision $precision, $mode typing, trtexec $trtexec"

built=0
for manifest in "$models_dir"/*/manifest.json; do
  [[ -e "$manifest" ]] || { echo "no models under $models_dir"; exit 0; }
  model_dir="$(dirname "$manifest")"
  name="$(basename "$model_dir")"
  out="$("$python" -m engines.plans plan-dir "$model_dir" "$trt_version" "$cc")"
  if [[ "${FORCE:-0}" != 1 ]] && "$python" -m engines.plans is-current "$model_dir" "$trt_version" "$cc" 2>/dev/null; then
    echo "$name: plan current at $out/model.plan"
    continue
  fi
  mkdir -p "$out"
  onnx="$model_dir/$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["onnx"])' "$manifest")"
  flags=()
  if [[ "$precision" == fp16 && "$mode" == strong ]]; then
    "$python" -m engines.convert_fp16 "$onnx" "$out/model_fp16.onnx"
    onnx="$out/model_fp16.onnx"
    typing="strong (fp16 ONNX from engines/convert_fp16.py)"
  elif [[ "$precision" == fp16 ]]; then
    flags+=(--fp16)
    typing="weak (--fp16 builder flag)"
  else
    typing="$mode (fp32)"
  fi
  read -r -a shapes <<<"$("$python" -m engines.plans shapes "$model_dir")"
  cmd=("$trtexec" "--onnx=$onnx" "--saveEngine=$out/model.plan.tmp" "${shapes[@]}"
       "--timingCacheFile=$timing_cache" "--device=$gpu" --skipInference "${flags[@]}")
  echo "$name: building with ${typing}: ${cmd[*]}"
  start=$SECONDS
  if ! "${cmd[@]}" >"$out/trtexec.log" 2>&1; then
    tail -n 30 "$out/trtexec.log" >&2
    echo "$name: trtexec failed, full log in $out/trtexec.log" >&2
    exit 1
  fi
  mv "$out/model.plan.tmp" "$out/model.plan"
  "$python" -m engines.plans write-sidecar "$model_dir" "$trt_version" "$cc" "$precision" "$typing" \
    "${cmd[*]}" --gpu-name "${gpu_name//_/ }"
  echo "$name: built $out/model.plan in $((SECONDS - start)) s (TensorRT $trt_version, $typing)"
  built=$((built + 1))
done
echo "built $built plan(s) for TensorRT $trt_version sm$cc"
