"""TensorRTEngine's logic against tests/engines/fake_tensorrt.py (a FAKE, not TensorRT).

What this proves: bindings are made from the name-based API, shapes and addresses are set, data
flows host -> device -> host, profile bounds and foreign plans are refused with a rebuild hint,
and every CUDA call happens on the engine's own thread with its context pushed. What it cannot
prove: that real TensorRT and pycuda behave as the fake does (tests/engines/test_engine_tensorrt_gpu.py
and engines/check_gpu.sh do that on a GPU).
"""

from __future__ import annotations

import threading

import fake_tensorrt
import numpy as np
import pytest
from fake_tensorrt import build_fake_plan

from engines.base import Engine, EngineError
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.plans import PLAN_FILE, plan_dir


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
    assert fake.contexts_made == 1


def test_close_frees_and_detaches(fake, manifest):
    from engines.tensorrt_engine import TensorRTEngine

    build_fake_plan(manifest)
    engine = TensorRTEngine(manifest)
    engine.warmup()
    engine.close()
    engine.close()  # idempotent
    assert fake.memory == {} and ("detach",) in fake.calls
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
    assert ("detach",) in fake.calls


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
