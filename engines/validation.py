"""Input checks shared by every runtime: the manifest is the contract, not the ONNX file.

Checking here (and not leaving it to the runtime) gives one clear message per mistake, the same
on ONNX Runtime and TensorRT, instead of a runtime-specific stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engines.base import EngineError
from engines.manifest import ModelManifest, TensorSpec


def numpy_dtype(name: str) -> np.dtype:
    return np.dtype(np.bool_) if name == "bool" else np.dtype(name)


def batch_axis_is_dynamic(spec: TensorSpec) -> bool:
    """Axis 0 is the batch axis when the manifest names it (any string, usually "batch")."""
    return bool(spec.shape) and isinstance(spec.shape[0], str)


def dim_range(manifest: ModelManifest, dim: str) -> tuple[int, int, int]:
    """(min, opt, max) of a named dynamic axis: the batch axis from `batch`, others from
    the optional manifest key `dim_ranges: {"<name>": {"min": .., "opt": .., "max": ..}}`."""
    ranges = manifest.raw.get("dim_ranges", {})
    if dim in ranges:
        r = ranges[dim]
        return int(r["min"]), int(r["opt"]), int(r["max"])
    if dim == "batch":
        return manifest.batch_min, manifest.batch_opt, manifest.batch_max
    raise EngineError(
        f"model {manifest.name!r}: dynamic axis {dim!r} has no range; add it to manifest "
        f"'dim_ranges' (min/opt/max)"
    )


def check_inputs(manifest: ModelManifest, inputs: Mapping[str, np.ndarray]) -> int:
    """Raise EngineError unless `inputs` match the manifest; return the batch size."""
    expected = {spec.name for spec in manifest.inputs}
    given = set(inputs)
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise EngineError(
            f"model {manifest.name!r}: inputs must be {sorted(expected)}; "
            f"missing {missing}, unexpected {extra}"
        )
    named: dict[str, int] = {}
    for spec in manifest.inputs:
        array = inputs[spec.name]
        prefix = f"model {manifest.name!r} input {spec.name!r}"
        if not isinstance(array, np.ndarray):
            raise EngineError(f"{prefix}: expected a numpy array, got {type(array).__name__}")
        if array.dtype != numpy_dtype(spec.dtype):
            # No silent casts: a float64 or uint8 image here means preprocessing went wrong.
            raise EngineError(f"{prefix}: dtype must be {spec.dtype}, got {array.dtype}")
        if array.ndim != len(spec.shape):
            raise EngineError(
                f"{prefix}: rank must be {len(spec.shape)} (shape {list(spec.shape)}), "
                f"got shape {list(array.shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
            if isinstance(want, int):
                if got != want:
                    raise EngineError(
                        f"{prefix}: axis {axis} must be {want} (shape {list(spec.shape)}), "
                        f"got shape {list(array.shape)}"
                    )
                continue
            if got < 1:
                raise EngineError(f"{prefix}: axis {axis} ({want}) is empty")
            if named.setdefault(want, got) != got:
                raise EngineError(
                    f"{prefix}: axis {axis} ({want}) is {got} but another input has {want}={named[want]}"
                )
    batch = _batch_size(manifest, named)
    if batch is not None and not manifest.batch_min <= batch <= manifest.batch_max:
        raise EngineError(
            f"model {manifest.name!r}: batch {batch} outside {manifest.batch_min}..{manifest.batch_max} "
            f"(manifest 'batch'); split the request"
        )
    return batch if batch is not None else 1


def _batch_size(manifest: ModelManifest, named: dict[str, int]) -> int | None:
    for spec in manifest.inputs:
        if batch_axis_is_dynamic(spec):
            return named[str(spec.shape[0])]
    return None


LEVELS = ("min", "opt", "max")


def example_inputs(
    manifest: ModelManifest, batch: int | None = None, fill: str = "zeros", seed: int = 0, level: str = "opt"
) -> dict[str, np.ndarray]:
    """Inputs of the manifest's shapes, for warm-up, checks, benches: named axes at their `level`
    ("min", "opt" or "max" of the optimization profile), the batch axis at `batch` when given."""
    index = LEVELS.index(level)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in manifest.inputs:
        shape = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                shape.append(dim)
            elif axis == 0 and batch is not None:
                shape.append(batch)
            else:
                shape.append(dim_range(manifest, dim)[index])
        dtype = numpy_dtype(spec.dtype)
        if fill == "zeros":
            arrays[spec.name] = np.zeros(shape, dtype=dtype)
        elif dtype.kind == "f":
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return arrays
