"""TensorRT engine (TensorRT 10/11 name-based API) with pycuda buffers.

Written to the TensorRT 10.x/11.x Python API documentation; on the machine where it was written
there is no GPU, so its logic is tested against tests/engines/fake_tensorrt.py and the real runtime
only by the `gpu`-marked tests and engines/check_gpu.sh.

Threads and CUDA contexts: each engine owns one CUDA context (made by `Device.make_context`), one
execution context and one CUDA stream, all used only from the engine's own single inference
thread; every call into CUDA there pushes the context first and pops it after, so no other thread
ever finds it current. `infer` may be called from any number of threads: calls queue up for the
owner thread and run one at a time. Never use `pycuda.autoinit` in the worker: it binds one context
to the importing thread and leaves the others without one.

`tensorrt` and `pycuda` are imported only here and only when an engine is made or probed, so the
base install (without the gpu extra) never imports them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EngineError
from engines.manifest import ModelManifest
from engines.plans import PLAN_FILE, REBUILD_HINT, check_plan, plan_dir
from engines.validation import check_inputs, example_inputs, numpy_dtype

log = logging.getLogger(__name__)


def _import_runtime() -> tuple[Any, Any]:
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: pycuda present but no libcuda (no driver)
        raise EngineError(f"TensorRT runtime unavailable ({exc}); install the gpu extra on a GPU host") \
            from exc
    return trt, cuda


@dataclass(frozen=True)
class TensorRTProbe:
    """What the registry needs to choose a runtime; `reason` says why TensorRT is unusable."""

    usable: bool
    reason: str = ""
    trt_version: str = ""
    compute_capability: tuple[int, int] | None = None
    gpu_name: str = ""

    def plan_path(self, model_dir: Path) -> Path:
        assert self.compute_capability is not None
        return plan_dir(model_dir, self.trt_version, self.compute_capability) / PLAN_FILE


def probe(device_id: int = 0) -> TensorRTProbe:
    """Is there a GPU, tensorrt and pycuda? Creates no CUDA context (cuInit only)."""
    try:
        trt, cuda = _import_runtime()
    except EngineError as exc:
        return TensorRTProbe(False, str(exc))
    try:
        cuda.init()
        count = cuda.Device.count()
        if count <= device_id:
            return TensorRTProbe(False, f"no NVIDIA GPU {device_id} visible ({count} found)")
        device = cuda.Device(device_id)
        return TensorRTProbe(True, "", trt.__version__, tuple(device.compute_capability()), device.name())
    except Exception as exc:  # pycuda.driver.Error and friends: no driver, no device
        return TensorRTProbe(False, f"CUDA unavailable: {exc}")


@dataclass
class _Binding:
    name: str
    dtype: np.dtype
    host: np.ndarray  # pinned (page-locked), flat, sized for the profile's max shape
    device: Any  # pycuda DeviceAllocation of the same size
    min_shape: tuple[int, ...] = ()
    max_shape: tuple[int, ...] = ()


class TensorRTEngine:
    """One TensorRT plan, run on one GPU through optimization profile 0."""

    runtime = "tensorrt"

    def __init__(self, manifest: ModelManifest, plan_path: Path | None = None, device_id: int = 0) -> None:
        self.manifest = manifest
        self._trt, self._cuda = _import_runtime()
        self._ctx: Any = None
        self._inputs: list[_Binding] = []
        self._outputs: list[_Binding] = []
        # One worker thread = the one owner of this engine's CUDA context, stream and buffers.
        self._owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"trt-{manifest.name}")
        self._closed = False
        try:
            self._owner.submit(self._setup, plan_path, device_id).result()
        except BaseException:
            self.close()
            raise

    # --- everything below named _setup/_run/_teardown runs on the owner thread only ---

    def _setup(self, plan_path: Path | None, device_id: int) -> None:
        trt, cuda = self._trt, self._cuda
        cuda.init()
        device = cuda.Device(device_id)
        capability = tuple(device.compute_capability())
        plan_path = plan_path or plan_dir(self.manifest.directory, trt.__version__, capability) / PLAN_FILE
        # Refuse a foreign plan before TensorRT gives its opaque deserialization error.
        self.build = check_plan(self.manifest, plan_path, trt.__version__, capability)
        self.plan_path = plan_path
        self._ctx = device.make_context()  # made current on this thread; popped below
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if self._engine is None:
                raise EngineError(
                    f"model {self.manifest.name!r}: TensorRT {trt.__version__} could not deserialize "
                    f"{plan_path}; {REBUILD_HINT}"
                )
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            if not self._context.set_optimization_profile_async(0, self._stream.handle):
                raise EngineError(f"model {self.manifest.name!r}: cannot select optimization profile 0")
            self._bind()
        finally:
            self._ctx.pop()
        log.info(
            "model %s %s loaded on TensorRT %s (%s, %s, %s), plan %s",
            self.manifest.name, self.manifest.version, trt.__version__, device.name(),
            self.build.compute_capability, self.build.precision, plan_path,
        )

    def _bind(self) -> None:
        """Allocate max-size pinned host and device buffers once and give TensorRT their addresses."""
        trt, cuda, engine, context = self._trt, self._cuda, self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._check_io_matches_manifest(names, is_input)
        specs = {s.name: s for s in (*self.manifest.inputs, *self.manifest.outputs)}
        # Set every input to its max shape first: output max shapes follow from them.
        profiles = {}
        for name in (n for n in names if is_input[n]):
            shape = tuple(engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                low, _opt, high = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            else:
                low = high = shape
            profiles[name] = (low, high)
            if not context.set_input_shape(name, high):
                raise EngineError(f"model {self.manifest.name!r}: TensorRT refused shape {high} for {name!r}")
        for name in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if dtype != numpy_dtype(specs[name].dtype):
                raise EngineError(
                    f"model {self.manifest.name!r} tensor {name!r}: plan has {dtype}, manifest says "
                    f"{specs[name].dtype}; {REBUILD_HINT}"
                )
            max_shape = profiles[name][1] if is_input[name] else tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in max_shape):
                raise EngineError(f"model {self.manifest.name!r}: output {name!r} has no bounded shape")
            host = cuda.pagelocked_empty(max(math.prod(max_shape), 1), dtype)
            binding = _Binding(name, dtype, host, cuda.mem_alloc(host.nbytes))
            # Buffers never move, so each address is set once, not per call.
            context.set_tensor_address(name, int(binding.device))
            if is_input[name]:
                binding.min_shape, binding.max_shape = profiles[name]
                self._inputs.append(binding)
            else:
                self._outputs.append(binding)

    def _check_io_matches_manifest(self, names: list[str], is_input: dict[str, bool]) -> None:
        plan_inputs = sorted(n for n in names if is_input[n])
        plan_outputs = sorted(n for n in names if not is_input[n])
        want_inputs = sorted(s.name for s in self.manifest.inputs)
        want_outputs = sorted(s.name for s in self.manifest.outputs)
        if (plan_inputs, plan_outputs) != (want_inputs, want_outputs):
            raise EngineError(
                f"model {self.manifest.name!r}: plan tensors in {plan_inputs} out {plan_outputs}, manifest "
                f"in {want_inputs} out {want_outputs}; {REBUILD_HINT}"
            )

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, context, stream = self._cuda, self._context, self._stream
        self._ctx.push()
        try:
            for b in self._inputs:
                array = inputs[b.name]
                bounds = zip(b.min_shape, array.shape, b.max_shape, strict=True)
                if not all(lo <= d <= hi for lo, d, hi in bounds):
                    raise EngineError(
                        f"model {self.manifest.name!r} input {b.name!r}: shape {list(array.shape)} outside "
                        f"the plan's profile {list(b.min_shape)}..{list(b.max_shape)}; {REBUILD_HINT}"
                    )
                if not context.set_input_shape(b.name, array.shape):
                    raise EngineError(f"model {self.manifest.name!r}: TensorRT refused shape {array.shape}")
                staged = b.host[: array.size].reshape(array.shape)
                np.copyto(staged, array)
                cuda.memcpy_htod_async(b.device, staged, stream)
            if not context.execute_async_v3(stream.handle):
                raise EngineError(f"model {self.manifest.name!r}: TensorRT execute_async_v3 failed")
            views = {}
            for b in self._outputs:
                shape = tuple(context.get_tensor_shape(b.name))
                views[b.name] = b.host[: math.prod(shape)].reshape(shape)
                cuda.memcpy_dtoh_async(views[b.name], b.device, stream)
            stream.synchronize()
            # Copy out: the pinned buffers are reused by the next call.
            return {name: view.copy() for name, view in views.items()}
        finally:
            self._ctx.pop()

    def _teardown(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for b in (*self._inputs, *self._outputs):
                b.device.free()
            self._inputs, self._outputs = [], []
            # TensorRT objects must go while their CUDA context is still alive.
            self._context = self._engine = self._runtime = self._stream = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None

    # --- public API: any thread ---

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise EngineError(f"model {self.manifest.name!r}: engine is closed")
        check_inputs(self.manifest, inputs)
        try:
            return self._owner.submit(self._run, inputs).result()
        except EngineError:
            raise
        except Exception as exc:  # pycuda.driver.Error, TensorRT errors
            raise EngineError(f"model {self.manifest.name!r}: TensorRT failed: {exc}") from exc

    def warmup(self) -> None:
        """One zero batch at the profile's opt batch: TensorRT's lazy allocations happen now."""
        self.infer(example_inputs(self.manifest, batch=self.manifest.batch_opt))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._owner.submit(self._teardown).result()
        finally:
            self._owner.shutdown(wait=True)
