"""The manifest that sits beside each model's ONNX file in models/<name>/manifest.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DTYPES = {"float32", "float16", "int64", "int32", "uint8", "bool"}


@dataclass(frozen=True)
class Int8Variant:
    """An int8 copy of the model for ONNX Runtime on CPU (`training/quantize.py`), same I/O.

    `source_sha256` is the fp32 file it was quantized from: re-exporting the model without
    quantizing again leaves a stale int8 file, which `verify_checksum` then refuses."""

    onnx: str
    sha256: str
    source_sha256: str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    # Ints are fixed sizes; strings name dynamic axes (such as "batch").
    shape: tuple[int | str, ...]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorSpec:
        if raw.get("dtype") not in DTYPES:
            raise ValueError(f"tensor {raw.get('name')!r}: dtype must be one of {sorted(DTYPES)}")
        return cls(name=str(raw["name"]), dtype=str(raw["dtype"]), shape=tuple(raw["shape"]))


@dataclass(frozen=True)
class ModelManifest:
    name: str
    version: str
    task_type: str
    directory: Path
    onnx: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch_min: int = 1
    batch_opt: int = 1
    batch_max: int = 1
    preprocessing: dict[str, Any] = field(default_factory=dict)
    int8: Int8Variant | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.directory / self.onnx

    @property
    def int8_path(self) -> Path | None:
        return None if self.int8 is None else self.directory / self.int8.onnx

    @classmethod
    def load(cls, directory: Path | str) -> ModelManifest:
        directory = Path(directory)
        path = directory / "manifest.json"
        try:
            raw = json.loads(path.read_text())
            batch = raw.get("batch", {})
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                task_type=str(raw.get("task_type", "")),
                directory=directory,
                onnx=str(raw["onnx"]),
                sha256=str(raw["sha256"]),
                inputs=tuple(TensorSpec.from_dict(t) for t in raw["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in raw["outputs"]),
                batch_min=int(batch.get("min", 1)),
                batch_opt=int(batch.get("opt", 1)),
                batch_max=int(batch.get("max", 1)),
                preprocessing=dict(raw.get("preprocessing", {})),
                int8=_int8(raw.get("int8")),
                raw=raw,
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid model manifest: {exc}") from exc

    def verify_checksum(self) -> None:
        """Refuse an ONNX file that is not the one the manifest describes, and an int8 copy that is
        not, or was not made from the fp32 file as it is now."""
        check_sha256(self.onnx_path, self.sha256)
        if self.int8 is not None:
            if self.int8.source_sha256 != self.sha256:
                raise ValueError(
                    f"{self.int8_path}: quantized from sha256 {self.int8.source_sha256}, but the model "
                    f"is now {self.sha256} (quantize it again: python -m training.quantize)"
                )
            check_sha256(self.directory / self.int8.onnx, self.int8.sha256)


def check_sha256(path: Path, expected: str) -> None:
    """Raise ValueError unless the file's sha256 is `expected`."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ValueError(f"{path}: sha256 {digest} does not match manifest {expected}")


def _int8(raw: dict[str, Any] | None) -> Int8Variant | None:
    if raw is None:
        return None
    return Int8Variant(str(raw["onnx"]), str(raw["sha256"]), source_sha256=str(raw["source_sha256"]))
