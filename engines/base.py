"""The engine interface every runtime implements (ONNX Runtime, TensorRT)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from engines.manifest import ModelManifest


class EngineError(Exception):
    """Inference could not run (bad inputs, runtime failure); grpc_server.processing maps it to 12001."""


@runtime_checkable
class Engine(Protocol):
    """One loaded model. `infer` takes and returns arrays by tensor name."""

    manifest: ModelManifest
    # "onnxruntime" or "tensorrt"; logged by the worker and shown by /readyz.
    runtime: str

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...
