"""TensorRTEngine's logic against tests/engines/fake_tensorrt.py (a FAKE, not TensorRT).

What this proves: bindings are made from the name-based API, shapes and addresses are set, data
flows host -> device -> host, profile bounds and foreign plans are refused with a rebuild hint,
every CUDA call happens on the engine's own thread with the context pushed, the engines of a
process share the device's primary context and one TensorRT logger, and a pycuda or TensorRT error
at any setup step becomes an EngineError (so `auto` falls back to ONNX Runtime) with everything
released. What it cannot prove: that real TensorRT and pycuda behave as the fake does
(tests/engines/test_engine_tensorrt_gpu.py and engines/check_gpu.sh do that on a GPU).
"""

from __future__ import annotations

import re
import threading

import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import (
    FakeCudaLaunchError,
    FakeCudaLogicError,
    FakeCudaMemoryError,
    FakeCudaRuntimeError,
    build_fake_plan,
)

from engines.base import Engine, EngineError
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.plans import PLAN_FILE, plan_dir
from engines.registry import load_engine
from engines.sample_model import write_sample_model


@pytest.fixture
def fake(monkeypatch):
    return fake_tensorrt.install(monkeypatch)


@pytest.fixture
def trt_engine(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest)
    engine = TensorRTEngine(manifest)
    yield engine
    engine.close()


def test_bindings_shapes_and_addresses(trt_engine, fake):
    assert isinstance(trt_engine, Engine) and trt_engine.runtime == "tensorrt"
    addressed = {c[1] for c in fake.calls if c[0] == "set_tensor_address"}
    assert addressed == {"image", "logits", "features"}
    # Inputs are first set to the profile max so that output buffers are sized for it.
    assert ("set_input_shape", "image", (4, 1, 32, 32)) in fake.calls
    assert ("set_optimization_profile_async", 0) in fake.calls
    assert [b.name for b in trt_engine._outputs] == ["logits", "features"]
    assert trt_engine._outputs[1].host.size == 4 * 8 * 32 * 32


@pytest.mark.parametrize("batch", [1, 4])
def test_results_match_onnxruntime(trt_engine, manifest, fake, batch):
    image = np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)
    got = trt_engine.infer({"image": image})
    want = OnnxRuntimeEngine(manifest, intra_threads=1).infer({"image": image})
    assert ("set_input_shape", "image", (batch, 1, 32, 32)) in fake.calls
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


def test_the_fake_runs_async_work_only_when_the_stream_is_synchronized(fake):
    """The premise of the next test: like CUDA, nothing enqueued is done before synchronize."""
    import pycuda.driver as cuda

    ctx = cuda.Device(0).make_context()
    try:
        stream = cuda.Stream()
        device = cuda.mem_alloc(16)
        host_in = np.arange(4, dtype=np.float32)
        host_out = cuda.pagelocked_empty(4, np.float32)
        cuda.memcpy_htod_async(device, host_in, stream)
        cuda.memcpy_dtoh_async(host_out, device, stream)
        assert np.isnan(host_out).all()  # still the uninitialised pinned memory
        stream.synchronize()
        np.testing.assert_array_equal(host_out, host_in)
        device.free()
    finally:
        ctx.pop()
        ctx.detach()


def test_outputs_are_read_only_after_the_stream_is_synchronized(trt_engine, manifest, fake):
    """Each call returns its own outputs, copied to the host and waited for: without
    stream.synchronize() they would be the pinned buffers' previous (or uninitialised) contents."""
    reference = OnnxRuntimeEngine(manifest, intra_threads=1)
    for seed in (11, 12, 13):
        image = np.random.default_rng(seed).standard_normal((2, 1, 32, 32)).astype(np.float32)
        got = trt_engine.infer({"image": image})
        want = reference.infer({"image": image})
        for name in want:
            assert np.isfinite(got[name]).all(), name
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
    names = [c[0] for c in fake.calls]
    last_run = len(names) - 1 - names[::-1].index("execute_async_v3")
    assert "synchronize" in names[last_run:]


def test_results_are_copies_not_the_reused_pinned_buffer(trt_engine):
    first = trt_engine.infer({"image": np.ones((1, 1, 32, 32), np.float32)})["logits"]
    kept = first.copy()
    trt_engine.infer({"image": np.zeros((1, 1, 32, 32), np.float32)})
    np.testing.assert_array_equal(first, kept)


def test_cuda_work_runs_on_one_owner_thread_with_context_pushed(trt_engine, fake):
    # The fake raises on any CUDA call without a current context, so success shows push/pop.
    results = []
    callers = [
        threading.Thread(target=lambda: results.append(trt_engine.infer({"image": np.ones((2, 1, 32, 32),
                                                                                        np.float32)})))
        for _ in range(3)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(results) == 3
    assert len(fake.thread_ids) == 1 and threading.get_ident() not in fake.thread_ids
    pushes = sum(1 for c in fake.calls if c[0] == "push")
    pops = sum(1 for c in fake.calls if c[0] == "pop")
    assert pushes == pops  # nothing left current on the owner thread between calls
    assert fake.contexts_made == 0 and fake.primary_retains == 1  # the primary context, no new one


def test_close_frees_and_detaches(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest)
    engine = TensorRTEngine(manifest)
    engine.warmup()
    engine.close()
    engine.close()  # idempotent
    assert fake.memory == {} and ("detach",) in fake.calls
    assert fake.primary_refs == 0 and ("detach-skipped",) not in fake.calls  # released, not leaked
    with pytest.raises(EngineError, match="closed"):
        engine.infer({"image": np.zeros((1, 1, 32, 32), np.float32)})


@pytest.mark.parametrize(
    ("version", "cc", "message"),
    [
        ("10.3.0", "86", "built for TensorRT 10.3.0 on sm86, this machine has TensorRT 10.8.0.43 on sm86"),
        ("10.8.0.43", "75", "on sm75, this machine has TensorRT 10.8.0.43 on sm86"),
    ],
)
def test_foreign_plan_refused_with_rebuild_hint(fake, manifest, tmp_path, version, cc, message):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest, version=version, cc=cc)
    with pytest.raises(EngineError) as info:
        TensorRTEngine(manifest, plan_path=plan_dir(manifest.directory, version, cc) / PLAN_FILE)
    assert message in str(info.value)
    assert "engines/build_engines.sh" in str(info.value)
    assert fake.contexts_made == 0  # refused before touching the GPU


def test_missing_plan_and_stale_onnx_refused(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    with pytest.raises(EngineError, match="no TensorRT plan at .*build_engines.sh"):
        TensorRTEngine(manifest)
    build_fake_plan(manifest, sha="0" * 64)
    with pytest.raises(EngineError, match="built from ONNX sha256 000000000000"):
        TensorRTEngine(manifest)


def test_unreadable_plan_refused_and_context_released(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest)
    (plan_dir(manifest.directory, "10.8.0.43", "86") / PLAN_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(EngineError, match="could not deserialize"):
        TensorRTEngine(manifest)
    assert ("detach",) in fake.calls and fake.primary_refs == 0


def test_plan_dtype_differing_from_manifest_refused(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest, image="float16")
    with pytest.raises(EngineError, match="plan has float16, manifest says float32"):
        TensorRTEngine(manifest)


def test_wrong_inputs_rejected_before_the_gpu(trt_engine, fake):
    executed = fake.calls.count(("execute_async_v3",))
    with pytest.raises(EngineError, match="batch 5 outside 1..4"):
        trt_engine.infer({"image": np.zeros((5, 1, 32, 32), np.float32)})
    with pytest.raises(EngineError, match="dtype must be float32"):
        trt_engine.infer({"image": np.zeros((1, 1, 32, 32), np.float16)})
    assert fake.calls.count(("execute_async_v3",)) == executed


def test_probe_reports_gpu_and_version(fake):
    from engines.tensorrt_engine import probe

    found = probe()
    assert found.usable and found.trt_version == "10.8.0.43" and found.compute_capability == (8, 6)
    fake.device_count = 0
    assert not probe().usable and "no NVIDIA GPU" in probe().reason


def test_engines_of_a_process_share_one_context_and_one_logger(fake, manifest, tmp_path):
    """Six models on one GPU used to make six CUDA contexts and six loggers: now the device's
    primary context is retained once and TensorRT's logger made once, each engine keeping its own
    owner thread (the fake still refuses any call where the context is not pushed)."""
    from engines.tensorrt_engine import TensorRTEngine, shared_context_users

    other = ModelManifest.load(write_sample_model(tmp_path / "other" / "second", name="second", seed=3))
    build_fake_plan(manifest)
    build_fake_plan(other)
    first, second = TensorRTEngine(manifest), TensorRTEngine(other)
    assert shared_context_users() == 2
    image = np.random.default_rng(5).standard_normal((2, 1, 32, 32)).astype(np.float32)
    want = {m.name: OnnxRuntimeEngine(m, intra_threads=1).infer({"image": image}) for m in (manifest, other)}
    errors: list[BaseException] = []

    def work(engine: TensorRTEngine) -> None:
        try:
            for _ in range(3):
                got = engine.infer({"image": image})
                np.testing.assert_allclose(got["logits"], want[engine.manifest.name]["logits"], rtol=1e-5)
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in (first, second, first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.contexts_made == 0 and fake.primary_retains == 1 and fake.primary_refs == 1
    assert fake.loggers == 1
    loggers = {c[1] for c in fake.calls if c[0] == "Runtime"}
    assert len(loggers) == 1  # both runtimes got the one logger
    assert len(fake.thread_ids) == 2  # one owner thread per engine, none of them the callers'
    first.close()
    assert fake.primary_refs == 1 and shared_context_users() == 1  # still retained for `second`
    second.infer({"image": image})
    second.close()
    assert fake.primary_refs == 0 and shared_context_users() == 0 and fake.memory == {}
    assert ("detach-skipped",) not in fake.calls
    # A later engine retains it again; the logger stays the one of the process.
    third = TensorRTEngine(manifest)
    third.close()
    assert fake.primary_retains == 2 and fake.primary_refs == 0 and fake.loggers == 1


# Each step of the engine's setup, failing as pycuda (or TensorRT, which raises RuntimeError and
# friends from its Python bindings) does there.
SETUP_FAILURES = [
    ("Device", FakeCudaLogicError("cuDeviceGet failed: invalid device ordinal"), "cuda.Device(0)"),
    ("retain_primary_context", FakeCudaLogicError("cuDevicePrimaryCtxRetain failed: out of memory"),
     "retain_primary_context"),
    ("push", FakeCudaLogicError("cuCtxPushCurrent failed: invalid device context"), "push"),
    ("Runtime", RuntimeError("TensorRT: CUDA initialization failure with error: 2"), "trt.Runtime"),
    ("deserialize_cuda_engine", RuntimeError("TensorRT: out of memory"), "deserialize_cuda_engine"),
    ("create_execution_context", RuntimeError("TensorRT: out of memory"), "create_execution_context"),
    ("Stream", FakeCudaRuntimeError("cuStreamCreate failed: out of memory"), "cuda.Stream"),
    ("set_optimization_profile_async", RuntimeError("TensorRT: invalid profile"),
     "set_optimization_profile_async"),
    ("pagelocked_empty", FakeCudaMemoryError("cuMemHostAlloc failed: out of memory"), "pagelocked_empty"),
    ("mem_alloc", FakeCudaMemoryError("cuMemAlloc failed: out of memory"), "mem_alloc"),
    ("set_tensor_address", RuntimeError("TensorRT: bad address"), "set_tensor_address"),
]


@pytest.mark.parametrize(("step", "error", "named"), SETUP_FAILURES, ids=[f[0] for f in SETUP_FAILURES])
def test_a_cuda_error_at_any_setup_step_becomes_an_engine_error(fake, manifest, step, error, named):
    from engines.tensorrt_engine import TensorRTEngine, shared_context_users

    build_fake_plan(manifest)
    fake.fail[step] = error
    with pytest.raises(EngineError, match=re.escape(f"setup failed at {named}")) as info:
        TensorRTEngine(manifest)
    assert f"{type(error).__name__}: {error}" in str(info.value)
    # Everything made before the failure is released: device memory, the context's retain.
    assert fake.memory == {} and fake.primary_refs == 0 and shared_context_users() == 0


@pytest.mark.parametrize(
    ("step", "error"),
    [(s, e) for s, e, _ in SETUP_FAILURES] + [("execute_async_v3", FakeCudaLaunchError("launch failed"))],
    ids=[f[0] for f in SETUP_FAILURES] + ["execute_async_v3 (warm-up)"],
)
def test_auto_falls_back_to_onnxruntime_on_any_cuda_error(fake, manifest, model_dir, step, error):
    """A pycuda MemoryError or LogicError used to escape load_engine (only EngineError was caught)
    and make the whole task type unavailable; `auto` must fall back to ONNX Runtime instead, and
    `tensorrt` must say why with an EngineError."""
    build_fake_plan(manifest)
    fake.fail[step] = error
    engine = load_engine(model_dir)  # auto
    assert engine.runtime == "onnxruntime"
    assert str(error) in engine.selection_reason  # "auto: TensorRT unusable (...)" or, for a failing
    # Device, already the probe's "auto: CUDA unavailable: ..."
    assert engine.infer({"image": np.zeros((1, 1, 32, 32), np.float32)})["logits"].shape == (1, 3)
    assert fake.memory == {} and fake.primary_refs == 0
    if step != "execute_async_v3":  # `tensorrt` does not warm up here; the pipeline's warm-up says it
        with pytest.raises(EngineError):
            load_engine(model_dir, runtime="tensorrt")
