"""The manifest that sits beside each model's ONNX file in models/<name>/manifest.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DTYPES = {"float32", "float16", "int64", "int32", "uint8", "bool"}


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
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.directory / self.onnx

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
                raw=raw,
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid model manifest: {exc}") from exc

    def verify_checksum(self) -> None:
        """Refuse an ONNX file that is not the one the manifest describes."""
        digest = hashlib.sha256(self.onnx_path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise ValueError(f"{self.onnx_path}: sha256 {digest} does not match manifest {self.sha256}")
