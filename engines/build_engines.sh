#!/usr/bin/env bash
# Build a TensorRT plan for every model in a model repository, for the GPU of this machine.
#
#   engines/build_engines.sh [MODELS_DIR]                 (default: models)
#   engines/build_engines.sh --print-paths [MODELS_DIR]   print the directories it writes, then exit
#   env: PRECISION=fp16|fp32 (fp16)  FORCE=1 (rebuild current plans)  GPU=0  PYTHON=python3
#        TRTEXEC=/path/to/trtexec (else PATH, then $TRTEXEC_DIRS: /opt/tensorrt/bin /usr/src/tensorrt/bin)
#        TRT_CACHE_DIR=dir of the timing caches (MODELS_DIR/.trt-cache)  TIMING_CACHE=one cache file
#        TRT_VERSION_CHECK=0 (build even when trtexec is another TensorRT than the Python package)
#
# It writes only under MODELS_DIR (plans, and the timing cache in MODELS_DIR/.trt-cache unless
# TRT_CACHE_DIR or TIMING_CACHE say otherwise): the GPU image's /app belongs to root and its pod runs
# as uid 10001, so nothing may be written there. A timing cache that cannot be written only slows
# the build (a warning), it never stops it.
#
# Plans are valid only for the TensorRT version and compute capability that built them, so each
# goes to MODELS_DIR/<name>/plans/<trt-version>/sm<cc>/model.plan with build.json beside it; a
# plan that is current (same ONNX sha256, precision and build recipe) is kept. Shapes (min/opt/max)
# come from the manifest. Typing, by the TensorRT version:
#   < 10.12  fp16 through the --fp16 builder flag (weak typing);
#   10.12-10.x  weak typing is deprecated: fp16 from an ONNX converted by engines/convert_fp16.py
#           (fp16 inside, fp32 inputs and outputs), built with --stronglyTyped;
#   >= 11   networks are always strongly typed and --fp16 is gone: the converted ONNX, no flag.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
print_paths=0
if [[ "${1:-}" == --print-paths ]]; then print_paths=1; shift; fi
models_arg="${1:-$root/models}"
cache_dir="${TRT_CACHE_DIR:-$models_arg/.trt-cache}"
if [[ -n "${TIMING_CACHE:-}" ]]; then cache_dir="$(dirname "$TIMING_CACHE")"; fi
if (( print_paths )); then
  echo "models $models_arg"
  echo "cache $cache_dir"
  exit 0
fi

models_dir="$(cd "$models_arg" && pwd)"
precision="${PRECISION:-fp16}"
gpu="${GPU:-0}"
python="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"

case "$precision" in fp16|fp32) ;; *) echo "PRECISION must be fp16 or fp32, got $precision" >&2; exit 2;; esac
trtexec="${TRTEXEC:-$(command -v trtexec || true)}"
if [[ -z "$trtexec" ]]; then
  for dir in ${TRTEXEC_DIRS:-/opt/tensorrt/bin /usr/src/tensorrt/bin}; do
    if [[ -x "$dir/trtexec" ]]; then trtexec="$dir/trtexec"; break; fi
  done
fi
[[ -n "$trtexec" && -x "$trtexec" ]] || {
  echo "trtexec not found (TRTEXEC=, PATH, ${TRTEXEC_DIRS:-/opt/tensorrt/bin /usr/src/tensorrt/bin})" >&2; exit 1; }

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

# One TensorRT: plans are filed under the Python package's version, so trtexec must be the same.
banner="$("$trtexec" --help 2>&1 | head -n 3 || true)"
if ! "$python" -m engines.plans check-trtexec "$banner" "$trt_version"; then
  if [[ "${TRT_VERSION_CHECK:-1}" != 0 ]]; then
    echo "refusing to build plans ($trtexec vs Python tensorrt $trt_version); TRT_VERSION_CHECK=0 overrides" >&2
    exit 1
  fi
  echo "WARNING: TRT_VERSION_CHECK=0: building anyway" >&2
fi

IFS=. read -r major minor _ <<<"$trt_version"
if (( major >= 11 )); then mode=strong11
elif (( major == 10 && minor >= 12 )); then mode=strong
else mode=weak; fi

timing_cache="${TIMING_CACHE:-$cache_dir/timing-$trt_version-sm$cc.cache}"
cache_flags=()
probe_file="$cache_dir/.write-test.$$"
if mkdir -p "$cache_dir" 2>/dev/null && : 2>/dev/null >"$probe_file"; then
  rm -f "$probe_file"
  cache_flags=("--timingCacheFile=$timing_cache")
  # Keep the cache out of git when MODELS_DIR is the repository's models/.
  [[ -n "${TIMING_CACHE:-}${TRT_CACHE_DIR:-}" || -e "$cache_dir/.gitignore" ]] || echo '*' >"$cache_dir/.gitignore"
else
  echo "WARNING: cannot write the timing cache $timing_cache; building without it (slower)" >&2
fi
echo "TensorRT $trt_version on $gpu_name (sm$cc), precision $precision, $mode typing, trtexec $trtexec"

force=()
if [[ "${FORCE:-0}" == 1 ]]; then force=(--force); fi
built=0
for manifest in "$models_dir"/*/manifest.json; do
  [[ -e "$manifest" ]] || { echo "no models under $models_dir"; exit 0; }
  model_dir="$(dirname "$manifest")"
  name="$(basename "$model_dir")"
  # One process answers where the plan goes, whether it is current (same ONNX sha256, precision
  # and recipe), and what to build from: the manifest's fp32 ONNX, refused if it has unsigned Q/DQ.
  job="$("$python" -m engines.plans plan-job "$model_dir" "$trt_version" "$cc" "$precision" "${force[@]}")"
  out="$(sed -n 's/^dir //p' <<<"$job")"
  if [[ "$(sed -n 's/^current //p' <<<"$job")" == 1* ]]; then
    echo "$name: plan current at $out/model.plan"
    continue
  fi
  mkdir -p "$out"
  onnx="$(sed -n 's/^onnx //p' <<<"$job")"
  flags=()
  if [[ "$precision" == fp16 && "$mode" != weak ]]; then
    # Fails (and so stops the build) when the converted graph's I/O types differ from the source's.
    "$python" -m engines.convert_fp16 "$onnx" "$out/model_fp16.onnx"
    onnx="$out/model_fp16.onnx"
    if [[ "$mode" == strong ]]; then
      flags+=(--stronglyTyped)
      typing="strong (--stronglyTyped, fp16 ONNX from engines/convert_fp16.py)"
    else
      typing="strong (TensorRT 11, fp16 ONNX from engines/convert_fp16.py)"
    fi
  elif [[ "$precision" == fp16 ]]; then
    flags+=(--fp16)
    typing="weak (--fp16 builder flag)"
  elif [[ "$mode" == strong ]]; then
    flags+=(--stronglyTyped)
    typing="strong (--stronglyTyped, fp32 ONNX)"
  else
    typing="$mode (fp32)"
  fi
  read -r -a shapes <<<"$(sed -n 's/^shapes //p' <<<"$job")"
  cmd=("$trtexec" "--onnx=$onnx" "--saveEngine=$out/model.plan.tmp" "${shapes[@]}"
       "${cache_flags[@]}" "--device=$gpu" --skipInference "${flags[@]}")
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
