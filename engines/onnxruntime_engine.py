"""ONNX Runtime engine: the embedded default (CPU), with the CUDA provider when it is installed.

Precision: a model whose manifest lists an int8 copy (`training/quantize.py`) runs from that copy
when the session is on CPU only and `precision` is "int8" (the default): about twice as fast on one
thread, at accuracy its model card measures. On a CUDA provider, or with "fp32", the fp32 file runs.

Threads: `InferenceSession.run` is thread-safe (ONNX Runtime documents concurrent `Run` calls on
one session), so one engine may serve several worker threads at once; each call then competes for
the same intra-op thread pool, so a CPU worker gains little from more than one inference thread.
`close` must not race with `infer`: the worker closes engines only after it stopped taking jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from engines.base import EngineError
from engines.manifest import ModelManifest
from engines.validation import check_inputs, example_inputs, numpy_dtype

log = logging.getLogger(__name__)

# ONNX Runtime's type strings for the manifest's dtypes.
_ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "uint8": "tensor(uint8)",
    "bool": "tensor(bool)",
}


PRECISIONS = ("int8", "fp32")


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it (onnxruntime-gpu), CPU always as fallback."""
    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or ["CPUExecutionProvider"]


class OnnxRuntimeEngine:
    """One ONNX model in one InferenceSession.

    `intra_threads=0` lets ONNX Runtime use one thread per physical core; set it lower when
    several workers share a machine. `inter_threads` only matters for parallel graph branches.
    `precision` "int8" takes the manifest's int8 copy when there is one and only the CPU provider
    is asked for; `self.precision` says what runs.
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        manifest: ModelManifest,
        intra_threads: int = 0,
        providers: Sequence[str] | None = None,
        *,
        inter_threads: int = 1,
        precision: str = "int8",
    ) -> None:
        if intra_threads < 0 or inter_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 = ONNX Runtime's default)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.manifest = manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = inter_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.providers = list(providers) if providers is not None else default_providers()
        on_cpu = self.providers == ["CPUExecutionProvider"]
        int8_path = manifest.int8_path if precision == "int8" and on_cpu else None
        path = int8_path or manifest.onnx_path
        self.precision = "int8" if int8_path else "fp32"
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=options, providers=self.providers
            )
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise EngineError(f"model {manifest.name!r}: ONNX Runtime cannot load {path}: {exc}") from exc
        # What ONNX Runtime actually enabled: a CUDA provider that failed to start is dropped.
        self.providers = self._session.get_providers()
        self._check_graph_matches_manifest(self._session)
        self._output_names = [spec.name for spec in manifest.outputs]
        log.info(
            "model %s %s (%s) loaded on ONNX Runtime %s, providers %s, intra_threads %d",
            manifest.name, manifest.version, self.precision, ort.__version__, self.providers, intra_threads,
        )

    def _check_graph_matches_manifest(self, session: ort.InferenceSession) -> None:
        """Refuse at load (not at the first request) an ONNX file whose I/O the manifest misdescribes."""
        for kind, specs, nodes in (
            ("input", self.manifest.inputs, session.get_inputs()),
            ("output", self.manifest.outputs, session.get_outputs()),
        ):
            graph = {node.name: node for node in nodes}
            if set(graph) != {spec.name for spec in specs}:
                raise EngineError(
                    f"model {self.manifest.name!r}: manifest {kind}s {sorted(s.name for s in specs)} "
                    f"but the ONNX graph has {sorted(graph)}"
                )
            for spec in specs:
                node = graph[spec.name]
                if node.type != _ORT_TYPES[spec.dtype] or len(node.shape) != len(spec.shape):
                    raise EngineError(
                        f"model {self.manifest.name!r} {kind} {spec.name!r}: manifest says "
                        f"{spec.dtype}{list(spec.shape)}, ONNX graph has {node.type}{list(node.shape)}"
                    )

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise EngineError(f"model {self.manifest.name!r}: engine is closed")
        check_inputs(self.manifest, inputs)
        feed = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        try:
            outputs = session.run(self._output_names, feed)
        except Exception as exc:
            raise EngineError(f"model {self.manifest.name!r}: ONNX Runtime failed: {exc}") from exc
        result = dict(zip(self._output_names, outputs, strict=True))
        for spec in self.manifest.outputs:
            # Cheap guard: a graph that drifts from its manifest is caught here, not in a pipeline.
            if result[spec.name].dtype != numpy_dtype(spec.dtype):
                raise EngineError(
                    f"model {self.manifest.name!r} output {spec.name!r}: got {result[spec.name].dtype}, "
                    f"manifest says {spec.dtype}"
                )
        return result

    def warmup(self) -> None:
        """Run one zero batch so that allocations and kernel choice happen before the first job."""
        self.infer(example_inputs(self.manifest, batch=self.manifest.batch_opt))

    def close(self) -> None:
        self._session = None
