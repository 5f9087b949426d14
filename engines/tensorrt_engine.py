"""TensorRT engine (TensorRT 10/11 name-based API) with pycuda buffers.

Written to the TensorRT 10.x/11.x Python API and pycuda documentation; the machine where it was
written has no GPU, so its logic is tested against tests/engines/fake_tensorrt.py and the real
runtime only by the `gpu`-marked tests and engines/check_gpu.sh.

One CUDA context and one TensorRT logger per process: every engine of a worker process uses the
device's primary context (`Device.retain_primary_context`, the context the CUDA runtime API, and so
TensorRT itself and ONNX Runtime's CUDA provider, use too), retained when the first engine is made
and released when the last one closes, and the one `trt.Logger` of the process (TensorRT documents
the logger as process-wide: it must outlive every runtime and engine made with it).

Threads: each engine still has its own owner thread (a one-thread executor) that alone makes every
CUDA and TensorRT call of that engine, its execution context, stream and buffers; it pushes the
shared context before each call and pops it after, so no context stays current on any thread and a
context is current on several owner threads at once only while each works (CUDA allows that).
`infer` may be called from any number of threads: calls queue up for the owner thread and run one at
a time. Never use `pycuda.autoinit` in the worker: it binds one context to the importing thread.

Errors: anything pycuda or TensorRT raises while an engine is set up (`pycuda.driver.MemoryError`
from `mem_alloc`, `LogicError` from a context call, a TensorRT RuntimeError...) becomes an
EngineError naming the step, after what was set up is released, so the registry can fall back to
ONNX Runtime.

`tensorrt` and `pycuda` are imported only here and only when an engine is made or probed, so the
base install (without the gpu extra) never imports them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


_LOCK = threading.Lock()
_LOGGER: tuple[Any, Any] | None = None  # (tensorrt module, its one Logger)
_CONTEXTS: dict[int, _SharedContext] = {}  # device id -> the process's context on it


def process_logger(trt: Any) -> Any:
    """The one TensorRT logger of this process (made on first use, never released)."""
    global _LOGGER
    with _LOCK:
        if _LOGGER is None or _LOGGER[0] is not trt:
            _LOGGER = (trt, trt.Logger(trt.Logger.WARNING))
        return _LOGGER[1]


class _SharedContext:
    """The device's primary context, retained once for all engines of the process on that device."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.users = 0


def _acquire_context(cuda: Any, device: Any, device_id: int) -> Any:
    with _LOCK:
        shared = _CONTEXTS.get(device_id)
        if shared is None:
            # Not made current (unlike make_context): each owner thread pushes it around its calls.
            shared = _CONTEXTS[device_id] = _SharedContext(device.retain_primary_context())
        shared.users += 1
        return shared.context


def _release_context(device_id: int, current: bool) -> bool:
    """One engine stops using the shared context; the last one releases the retain. `current`:
    the caller pushed it on this thread. Returns True when it was released here while current,
    in which case pycuda has already taken it off this thread's stack (no pop after).

    pycuda's detach releases a primary context only where it is current, or on the thread that
    retained it (an owner thread that may be gone), hence the push the caller makes first."""
    with _LOCK:
        shared = _CONTEXTS[device_id]
        shared.users -= 1
        if shared.users:
            return False
        del _CONTEXTS[device_id]
    try:
        shared.context.detach()  # cuDevicePrimaryCtxRelease
    except Exception:  # at close, a failed release must not hide why the engine closes
        log.exception("releasing the CUDA primary context of device %d failed", device_id)
        return False
    return current


def shared_context_users(device_id: int = 0) -> int:
    """How many engines of this process use the context on `device_id` (0 once all closed)."""
    with _LOCK:
        shared = _CONTEXTS.get(device_id)
        return shared.users if shared else 0


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
        self._device_id = device_id
        self._step = "start"
        self._inputs: list[_Binding] = []
        self._outputs: list[_Binding] = []
        # One worker thread = the one owner of this engine's CUDA context, stream and buffers.
        self._owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"trt-{manifest.name}")
        self._closed = False
        try:
            self._owner.submit(self._setup, plan_path, device_id).result()
        except BaseException as exc:
            try:
                self.close()
            except Exception:  # the setup error is the one to report
                log.exception("model %s: releasing a half-made TensorRT engine failed", manifest.name)
            if isinstance(exc, EngineError) or not isinstance(exc, Exception):
                raise
            # pycuda.driver.Error (MemoryError, LogicError, ...) or a TensorRT error: say where.
            raise EngineError(
                f"model {manifest.name!r}: TensorRT setup failed at {self._step}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # --- everything below named _setup/_run/_teardown runs on the owner thread only ---

    def _at(self, step: str) -> None:
        self._step = step  # named in the EngineError when the next call fails

    @contextmanager
    def _current(self) -> Iterator[None]:
        """The shared context current on this (the owner) thread for the block."""
        self._ctx.push()
        try:
            yield
        finally:
            self._ctx.pop()

    def _setup(self, plan_path: Path | None, device_id: int) -> None:
        trt, cuda = self._trt, self._cuda
        self._at("cuda.init")
        cuda.init()
        self._at(f"cuda.Device({device_id})")
        device = cuda.Device(device_id)
        capability = tuple(device.compute_capability())
        plan_path = plan_path or plan_dir(self.manifest.directory, trt.__version__, capability) / PLAN_FILE
        # Refuse a foreign plan before TensorRT gives its opaque deserialization error.
        self.build = check_plan(self.manifest, plan_path, trt.__version__, capability)
        self.plan_path = plan_path
        self._at("retain_primary_context")
        self._ctx = _acquire_context(cuda, device, device_id)
        self._at("push (making the context current)")
        with self._current():
            self._at("trt.Runtime")
            self._runtime = trt.Runtime(process_logger(trt))
            self._at("deserialize_cuda_engine")
            self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if self._engine is None:
                raise EngineError(
                    f"model {self.manifest.name!r}: TensorRT {trt.__version__} could not deserialize "
                    f"{plan_path}; {REBUILD_HINT}"
                )
            self._at("create_execution_context")
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineError(f"model {self.manifest.name!r}: TensorRT could not create an execution "
                                  f"context (out of GPU memory?)")
            self._at("cuda.Stream")
            self._stream = cuda.Stream()
            self._at("set_optimization_profile_async")
            if not self._context.set_optimization_profile_async(0, self._stream.handle):
                raise EngineError(f"model {self.manifest.name!r}: cannot select optimization profile 0")
            self._bind()
        self._at("done")
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
        self._at("set_input_shape (profile max)")
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
            self._at(f"pagelocked_empty({name})")
            host = cuda.pagelocked_empty(max(math.prod(max_shape), 1), dtype)
            self._at(f"mem_alloc({name}, {host.nbytes} bytes)")
            binding = _Binding(name, dtype, host, cuda.mem_alloc(host.nbytes))
            (self._inputs if is_input[name] else self._outputs).append(binding)  # freed by _teardown
            # Buffers never move, so each address is set once, not per call.
            self._at(f"set_tensor_address({name})")
            if context.set_tensor_address(name, int(binding.device)) is False:
                raise EngineError(f"model {self.manifest.name!r}: TensorRT refused the address of {name!r}")
            if is_input[name]:
                binding.min_shape, binding.max_shape = profiles[name]

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
        with self._current():
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

    def _teardown(self) -> None:
        if self._ctx is None:
            return
        pushed = False
        try:
            self._ctx.push()
            pushed = True
            for b in (*self._inputs, *self._outputs):
                b.device.free()
        finally:
            # Pinned buffers, TensorRT objects and the stream go while the context is current:
            # execution context, then engine, then runtime (each made from the one before).
            self._inputs, self._outputs = [], []
            self._context = self._engine = self._runtime = self._stream = None
            if not _release_context(self._device_id, current=pushed) and pushed:
                self._ctx.pop()
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
            raise EngineError(
                f"model {self.manifest.name!r}: TensorRT failed: {type(exc).__name__}: {exc}"
            ) from exc

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
