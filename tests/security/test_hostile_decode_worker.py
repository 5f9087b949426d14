"""The deflate bomb through a real service: redis, `dentalai grpc` and a worker process (the echo
pipelines of tests/backbone/echo_worker.py, the real decode step). The bomb is submitted as
imageData; the task fails 11002, the worker lives on without its peak memory growing by more than
the decoder's bound, and the same worker then analyses a normal image."""

from __future__ import annotations

from pathlib import Path

import pytest

from dentalai.contract import FINAL_STATUSES
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from tests.backbone.helpers import stub, submit_request, wait_status
from tests.conftest import Processes, RedisServer, make_settings
from tests.security.hostile_corpus import build

pytestmark = pytest.mark.slow
HOOK = "http://127.0.0.1:9/hook"
WORKER = "tests.backbone.echo_worker"
BOUND_KIB = 2**20  # grpc_server/decode.py's 1 GiB


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")
def test_deflate_bomb_fails_11002_and_the_worker_goes_on(
    redis_server: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    settings = make_settings(redis_server.url, worker={"models_dir": str(tmp_path)})
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    worker = processes.start([], settings, module=WORKER, wait_line="worker ready")
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    before = _peak_kib(worker.pid)
    workers = [w.worker_id for w in client.GetServiceStatus(pb.GetServiceStatusRequest()).workers]
    assert len(workers) == 1

    bomb = client.SubmitAnalysis(submit_request(HOOK, image_data=build("dicom_deflate_bomb")))
    task = wait_status(client, bomb.task_id, FINAL_STATUSES, timeout=60)
    assert (task.status, task.error.code) == (task_pb2.FAILED, 11002), task.error
    assert "Pixel Data is 2400000000 bytes" in task.error.message
    assert worker.poll() is None, "the worker died on the bomb"
    assert _peak_kib(worker.pid) - before < BOUND_KIB

    normal = client.SubmitAnalysis(submit_request(HOOK))
    task = wait_status(client, normal.task_id, FINAL_STATUSES, timeout=60)
    assert task.status == task_pb2.SUCCEEDED, task.error
    assert task.pano.image.width == 320 and task.pano.image.height == 300  # the echo pipeline's answer
    assert worker.poll() is None
    after = [w.worker_id for w in client.GetServiceStatus(pb.GetServiceStatusRequest()).workers]
    assert after == workers  # the same worker, still announcing itself
    channel.close()
