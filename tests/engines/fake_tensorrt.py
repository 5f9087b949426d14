"""A FAKE of the few `tensorrt` and `pycuda.driver` calls that engines/tensorrt_engine.py makes.

Not TensorRT: it exists so that the engine's logic (binding setup, shape and address setting,
profile bounds, plan refusal, CUDA context push/pop on the owner thread) is tested on a machine
without a GPU. Installed only inside tests, through `install(monkeypatch)` into sys.modules.

A fake plan is JSON naming an ONNX file; "executing" it runs that ONNX file with ONNX Runtime on
the bytes the engine copied into fake device memory, so results can be compared with the real
OnnxRuntimeEngine. The fake refuses any CUDA call made while its context is not current on the
calling thread, which is how the push/pop discipline is checked.

Contexts as pycuda has them (pycuda's doc/driver.rst and src/cpp/cuda.hpp): `make_context` makes a
new context and pushes it; `retain_primary_context` retains the device's one primary context
without making it current; `detach` of a primary context releases the retain only where it is
current (and then leaves pycuda's stack) or on the thread that retained it, and is otherwise
silently skipped (pycuda's "leaked out-of-thread context"), which the fake records.

Errors as pycuda raises them: `Error` and its subclasses `MemoryError`, `LogicError`,
`RuntimeError`, `LaunchError`. `FakeState.fail` = {step: exception} makes that step raise:
"init", "Device", "retain_primary_context", "push", "Runtime", "deserialize_cuda_engine",
"create_execution_context", "Stream", "set_optimization_profile_async", "pagelocked_empty",
"mem_alloc", "set_tensor_address", "execute_async_v3".

Asynchronous like CUDA: `memcpy_htod_async`, `memcpy_dtoh_async` and `execute_async_v3` only
enqueue their work on the stream; it is done, in order, when the stream is synchronized. Until
then an output's host buffer holds whatever it held before (garbage: page-locked buffers start as
NaN), so an engine that reads its outputs without `stream.synchronize()` gets wrong numbers.
"""

from __future__ import annotations

import enum
import itertools
import json
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from engines.plans import PLAN_FILE, SIDECAR_FILE, PlanBuild, plan_dir, trtexec_shapes


def profile_of(manifest) -> dict[str, list[list[int]]]:
    """The optimization profile build_engines.sh would give trtexec: {input: [min, opt, max] shapes}."""
    out: dict[str, list[list[int]]] = {}
    for level in trtexec_shapes(manifest).values():  # min, opt, max
        for part in level.split(","):
            name, dims = part.split(":")
            out.setdefault(name, []).append([int(d) for d in dims.split("x")])
    return out


@dataclass
class FakeState:
    version: str = "10.8.0.43"
    compute_capability: tuple[int, int] = (8, 6)
    device_count: int = 1
    memory: dict[int, bytearray] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    contexts_made: int = 0  # make_context: a new context each
    primary_retains: int = 0  # retain_primary_context calls
    primary_refs: int = 0  # the driver's retain count of the primary context now
    loggers: int = 0  # trt.Logger instances made
    thread_ids: set[int] = field(default_factory=set)
    streams: dict[int, Any] = field(default_factory=dict)  # handle -> Stream
    fail: dict[str, BaseException] = field(default_factory=dict)  # step -> what it raises

    def step(self, name: str) -> None:
        if name in self.fail:
            self.calls.append(("failed", name))
            raise self.fail[name]


class _ContextStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[FakeContext] = []


_STACK = _ContextStack()
_ADDRESSES = itertools.count(0x1000, 0x1000)
_HANDLES = itertools.count(0xABC)


class FakeCudaError(Exception):
    """pycuda.driver.Error: the base of all pycuda errors."""


class FakeCudaMemoryError(FakeCudaError):
    """pycuda.driver.MemoryError: mem_alloc or related functionality failed."""


class FakeCudaLogicError(FakeCudaError):
    """pycuda.driver.LogicError: e.g. CUDA used before it was initialized."""


class FakeCudaRuntimeError(FakeCudaError):
    """pycuda.driver.RuntimeError."""


class FakeCudaLaunchError(FakeCudaError):
    """pycuda.driver.LaunchError."""


def _require_current(state: FakeState, what: str) -> None:
    state.thread_ids.add(threading.get_ident())
    if not _STACK.stack or _STACK.stack[-1].detached:
        thread = threading.current_thread().name
        raise FakeCudaLogicError(f"{what}: no current CUDA context on thread {thread}")


# ---- pycuda.driver ----

class FakeContext:
    def __init__(self, state: FakeState, primary: bool = False) -> None:
        self.state, self.detached, self.primary = state, False, primary
        self.thread = threading.get_ident()  # pycuda remembers the thread that made the object

    def push(self) -> None:
        self.state.step("push")
        if self.detached:
            raise FakeCudaLogicError("cannot push a detached context")
        self.state.calls.append(("push",))
        _STACK.stack.append(self)

    def pop(self) -> None:  # pycuda: pops the calling thread's current context
        self.state.calls.append(("pop",))
        if not _STACK.stack:
            raise FakeCudaLogicError("pop with an empty context stack")
        _STACK.stack.pop()

    def detach(self) -> None:
        self.state.calls.append(("detach",))
        if self.detached:
            raise FakeCudaLogicError("cannot detach from invalid context")
        current = bool(_STACK.stack) and _STACK.stack[-1] is self
        if self.primary and not current and self.thread != threading.get_ident():
            self.state.calls.append(("detach-skipped",))  # pycuda's leaked out-of-thread context
            return
        self.detached = True
        if self.primary:
            self.state.primary_refs -= 1
        if current:
            _STACK.stack.pop()


class FakeDeviceAllocation:
    def __init__(self, state: FakeState, nbytes: int) -> None:
        self.state, self.address = state, next(_ADDRESSES) * 1000
        state.memory[self.address] = bytearray(nbytes)

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        _require_current(self.state, "free")
        del self.state.memory[self.address]


def make_driver(state: FakeState) -> types.ModuleType:
    cuda = types.ModuleType("pycuda.driver")

    class Device:
        def __init__(self, index: int) -> None:
            state.step("Device")
            if index >= state.device_count:
                raise FakeCudaLogicError(f"invalid device {index}")

        @staticmethod
        def count() -> int:
            return state.device_count

        def compute_capability(self) -> tuple[int, int]:
            return state.compute_capability

        def name(self) -> str:
            return "Fake GPU"

        def make_context(self) -> FakeContext:
            state.contexts_made += 1
            ctx = FakeContext(state)
            ctx.push()
            return ctx

        def retain_primary_context(self) -> FakeContext:
            state.step("retain_primary_context")
            state.primary_retains += 1
            state.primary_refs += 1
            return FakeContext(state, primary=True)  # not made current

    class Stream:
        """A queue of work: enqueued by the *_async calls, done by `synchronize` (in order)."""

        def __init__(self) -> None:
            state.step("Stream")
            _require_current(state, "Stream()")
            self.handle = next(_HANDLES)
            self.pending: list[Callable[[], None]] = []
            state.streams[self.handle] = self

        def enqueue(self, work: Callable[[], None]) -> None:
            self.pending.append(work)

        def synchronize(self) -> None:
            _require_current(state, "synchronize")
            state.calls.append(("synchronize",))
            while self.pending:
                self.pending.pop(0)()

    def mem_alloc(nbytes: int) -> FakeDeviceAllocation:
        state.step("mem_alloc")
        _require_current(state, "mem_alloc")
        return FakeDeviceAllocation(state, nbytes)

    def memcpy_htod_async(dest: FakeDeviceAllocation, src: np.ndarray, stream: Stream) -> None:
        _require_current(state, "memcpy_htod_async")
        address = int(dest)

        def copy() -> None:  # reads the (pinned) host buffer when the stream gets to it
            raw = np.ascontiguousarray(src).tobytes()
            state.memory[address][: len(raw)] = raw

        stream.enqueue(copy)

    def memcpy_dtoh_async(dest: np.ndarray, src: FakeDeviceAllocation, stream: Stream) -> None:
        _require_current(state, "memcpy_dtoh_async")
        address = int(src)

        def copy() -> None:
            raw = state.memory[address][: dest.nbytes]
            dest[...] = np.frombuffer(bytes(raw), dtype=dest.dtype).reshape(dest.shape)

        stream.enqueue(copy)

    def pagelocked_empty(shape: Any, dtype: Any) -> np.ndarray:
        """Uninitialised memory: NaN for floats, a byte pattern otherwise (never the right answer).
        Like cuMemHostAlloc, it needs a current context."""
        state.step("pagelocked_empty")
        _require_current(state, "pagelocked_empty")
        buffer = np.empty(shape, dtype)
        if np.issubdtype(buffer.dtype, np.floating):
            buffer.fill(np.nan)
        else:
            buffer.view(np.uint8).fill(0xA5)
        return buffer

    cuda.init = lambda: state.step("init")
    cuda.Device = Device
    cuda.Stream = Stream
    cuda.mem_alloc = mem_alloc
    cuda.pagelocked_empty = pagelocked_empty
    cuda.memcpy_htod_async = memcpy_htod_async
    cuda.memcpy_dtoh_async = memcpy_dtoh_async
    cuda.Error = FakeCudaError
    cuda.MemoryError = FakeCudaMemoryError
    cuda.LogicError = FakeCudaLogicError
    cuda.RuntimeError = FakeCudaRuntimeError
    cuda.LaunchError = FakeCudaLaunchError
    return cuda


# ---- tensorrt ----

class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    UINT8 = "uint8"


def write_fake_plan(
    path: Path, onnx_path: Path, profiles: dict[str, list[list[int]]], **overrides: str
) -> None:
    """A fake plan: the ONNX file to run, and profile 0 as {input: [min, opt, max]}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fake_tensorrt_plan": 1, "onnx": str(onnx_path), "profiles": profiles,
                                "dtypes": overrides}))


class FakeCudaEngine:
    def __init__(self, state: FakeState, plan: dict) -> None:
        self.state = state
        self.session = ort.InferenceSession(plan["onnx"], providers=["CPUExecutionProvider"])
        self.profiles = {k: [tuple(s) for s in v] for k, v in plan["profiles"].items()}
        self.dtypes = plan.get("dtypes", {})
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.names = self.inputs + self.outputs
        self.num_io_tensors = len(self.names)
        self.num_optimization_profiles = 1

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name in self.inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self.dtypes.get(name, "float32"))

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        nodes = {n.name: n for n in (*self.session.get_inputs(), *self.session.get_outputs())}
        return tuple(d if isinstance(d, int) else -1 for d in nodes[name].shape)

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        assert profile == 0
        return self.profiles[name]

    def create_execution_context(self) -> FakeExecutionContext:
        self.state.step("create_execution_context")
        _require_current(self.state, "create_execution_context")
        return FakeExecutionContext(self)


class FakeExecutionContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine, self.state = engine, engine.state
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_optimization_profile_async(self, index: int, stream_handle: int) -> bool:
        self.state.step("set_optimization_profile_async")
        self.state.calls.append(("set_optimization_profile_async", index))
        return index == 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.state.calls.append(("set_input_shape", name, tuple(shape)))
        low, _opt, high = self.engine.profiles[name]
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high, strict=True)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.engine.session.run(self.engine.outputs, feeds)
        return dict(zip(self.engine.outputs, outs, strict=True))

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.engine.inputs:
            return self.shapes[name]
        zeros = {n: np.zeros(self.shapes[n], np.float32) for n in self.engine.inputs}
        return self._run(zeros)[name].shape

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.state.step("set_tensor_address")
        self.state.calls.append(("set_tensor_address", name))
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        """Enqueues the inference on the stream of that handle, with the shapes and addresses set
        now (as TensorRT does); it runs when the stream is synchronized."""
        self.state.step("execute_async_v3")
        _require_current(self.state, "execute_async_v3")
        self.state.calls.append(("execute_async_v3",))
        stream = self.state.streams.get(stream_handle)
        if stream is None:
            raise FakeCudaError(f"execute_async_v3: no stream with handle {stream_handle:#x}")
        memory = self.state.memory
        shapes, addresses = dict(self.shapes), dict(self.addresses)

        def run() -> None:
            feeds = {}
            for name in self.engine.inputs:
                shape = shapes[name]
                count = int(np.prod(shape))
                raw = bytes(memory[addresses[name]][: count * 4])
                feeds[name] = np.frombuffer(raw, np.float32).reshape(shape)
            for name, value in self._run(feeds).items():
                raw = value.astype(np.float32).tobytes()
                memory[addresses[name]][: len(raw)] = raw

        stream.enqueue(run)
        return True


def make_tensorrt(state: FakeState) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = state.version

    class Logger:
        WARNING = 2

        def __init__(self, severity: int = 2) -> None:
            state.loggers += 1
            self.severity = severity

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            state.step("Runtime")
            self.logger = logger
            state.calls.append(("Runtime", id(logger)))

        def deserialize_cuda_engine(self, data: bytes) -> FakeCudaEngine | None:
            state.step("deserialize_cuda_engine")
            _require_current(state, "deserialize_cuda_engine")
            try:
                plan = json.loads(data)
            except ValueError:
                return None  # what TensorRT does with a plan it cannot read
            return FakeCudaEngine(state, plan)

    trt.Logger = Logger
    trt.Runtime = Runtime
    trt.TensorIOMode = TensorIOMode
    trt.DataType = DataType
    trt.nptype = lambda dtype: np.dtype(dtype.value).type
    return trt


def install(monkeypatch, state: FakeState | None = None) -> FakeState:
    """Put the fakes into sys.modules for this test only, with a fresh process-wide TensorRT state
    (the engine module's shared context and logger) so that tests do not see each other's."""
    import engines.tensorrt_engine as tensorrt_engine

    monkeypatch.setattr(tensorrt_engine, "_CONTEXTS", {})
    monkeypatch.setattr(tensorrt_engine, "_LOGGER", None)
    state = state or FakeState()
    driver = make_driver(state)
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", make_tensorrt(state))
    monkeypatch.setitem(__import__("sys").modules, "pycuda", pycuda)
    monkeypatch.setitem(__import__("sys").modules, "pycuda.driver", driver)
    return state


def build_fake_plan(manifest, version: str = "10.8.0.43", cc: str = "86", sha: str | None = None,
                    **dtypes: str) -> None:
    """A fake plan and its sidecar where engines/build_engines.sh would put them."""
    directory = plan_dir(manifest.directory, version, cc)
    write_fake_plan(directory / PLAN_FILE, manifest.onnx_path, profile_of(manifest), **dtypes)
    PlanBuild(
        model=manifest.name, model_version=manifest.version, onnx_sha256=sha or manifest.sha256,
        tensorrt_version=version, compute_capability=f"sm{cc}", precision="fp32", typing="test",
        shapes={}, command="fake",
    ).write(directory / SIDECAR_FILE)
