"""Load a model by directory and pick its runtime; find the models in a model repository.

`runtime="auto"` takes TensorRT only when a GPU, tensorrt, pycuda and a plan built for this GPU
and TensorRT version are all present; otherwise ONNX Runtime (which itself uses its CUDA provider
when onnxruntime-gpu is installed). The choice and its reason are logged and kept on the engine
as `selection_reason`, so the worker and /readyz can show them.

In `auto`, anything that goes wrong while the TensorRT engine is made or warmed up (a stale plan, a
pycuda MemoryError from `mem_alloc`, a LogicError from the context, a TensorRT error) falls back to
ONNX Runtime with a warning; only `tensorrt` makes it an error (EngineError).
"""

from __future__ import annotations

import logging
from pathlib import Path

from engines.base import Engine, EngineError
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "tensorrt", "onnxruntime")


def discover_models(models_dir: Path | str) -> dict[str, Path]:
    """{model name: directory} for every `models_dir/<name>/manifest.json`; the directory name must
    equal the manifest's name, so a pipeline's `model_name` finds it either way."""
    found: dict[str, Path] = {}
    for manifest_path in sorted(Path(models_dir).glob("*/manifest.json")):
        directory = manifest_path.parent
        manifest = ModelManifest.load(directory)
        if manifest.name != directory.name:
            raise ValueError(
                f"{manifest_path}: name {manifest.name!r} differs from its directory {directory.name!r}"
            )
        found[manifest.name] = directory
    return found


def load_engine(
    model_dir: Path | str, runtime: str = "auto", ort_intra_threads: int = 0, ort_precision: str = "int8"
) -> Engine:
    """Load the model in `model_dir` on the chosen runtime; raise EngineError when it cannot.
    `ort_precision` is ONNX Runtime's (`OnnxRuntimeEngine`); TensorRT plans are built from the
    fp32 file (engines/build_engines.sh)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"engine runtime must be one of {RUNTIMES}, got {runtime!r}")
    manifest = ModelManifest.load(Path(model_dir))
    try:
        # Always against the ONNX file: a TensorRT plan is trusted only through its sidecar's sha256.
        manifest.verify_checksum()
    except (OSError, ValueError) as exc:
        raise EngineError(f"model {manifest.name!r}: {exc}") from exc

    engine: Engine | None = None
    reason = "configured engine: onnxruntime"
    if runtime != "onnxruntime":
        engine, reason = _try_tensorrt(manifest, required=runtime == "tensorrt")
    if engine is None:
        engine = OnnxRuntimeEngine(manifest, intra_threads=ort_intra_threads, precision=ort_precision)
        reason = f"{reason}; providers {engine.providers}, {engine.precision}"
    engine.selection_reason = reason  # type: ignore[attr-defined]  # informational, not in the protocol
    log.info("model %s: runtime %s (%s)", manifest.name, engine.runtime, reason)
    return engine


def _try_tensorrt(manifest: ModelManifest, required: bool) -> tuple[Engine | None, str]:
    # Imported here so that merely using the registry never imports tensorrt or pycuda.
    from engines import tensorrt_engine

    found = tensorrt_engine.probe()
    if not found.usable:
        if required:
            raise EngineError(f"model {manifest.name!r}: engine 'tensorrt' configured but {found.reason}")
        return None, f"auto: {found.reason}"
    plan = found.plan_path(manifest.directory)
    if not plan.is_file() and not required:
        return None, (
            f"auto: GPU {found.gpu_name} but no plan for TensorRT {found.trt_version} at {plan} "
            f"(build with engines/build_engines.sh)"
        )
    engine = None
    try:
        engine = tensorrt_engine.TensorRTEngine(manifest, plan_path=plan)
        if not required:
            engine.warmup()  # the first execution allocates too: fail over here, not at the first job
    except Exception as exc:
        if engine is not None:
            try:
                engine.close()
            except Exception:
                log.exception("model %s: closing the failed TensorRT engine failed", manifest.name)
        if required:
            if isinstance(exc, EngineError):
                raise
            message = f"model {manifest.name!r}: TensorRT failed: {type(exc).__name__}: {exc}"
            raise EngineError(message) from exc
        # auto: a stale or unreadable plan, or a CUDA error, must not make the task type unavailable.
        log.warning("model %s: TensorRT unusable, falling back to ONNX Runtime: %s", manifest.name, exc)
        return None, f"auto: TensorRT unusable ({type(exc).__name__}: {exc})"
    return engine, f"TensorRT {found.trt_version} on {found.gpu_name}, plan {plan}"
