"""Faults with real processes and a real Redis: a poison image that crashes every worker that takes
it ends FAILED 12005 while other tasks flow; Redis restarted mid-run (graceful with AOF, and
SIGKILL with appendfsync always) loses no accepted task."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
import redis

from dentalai.contract import FINAL_STATUSES
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys
from tests.backbone.helpers import png_bytes, stub, submit_request, wait_status
from tests.conftest import (
    REDIS_SERVER,
    Processes,
    RedisServer,
    free_port,
    make_settings,
    open_ref,
    queue_drained,
    wait_port,
)
from tests.reliability.poison_worker import POISON_WIDTH

pytestmark = pytest.mark.slow
HOOK = "http://127.0.0.1:9/hook"
FINAL = FINAL_STATUSES  # the contract's set (dentalai.contract)


class Supervisor:
    """Restarts crashed worker processes, as Kubernetes' restartPolicy does; counts the crashes."""

    def __init__(self, processes: Processes, settings: object, count: int) -> None:
        self.processes, self.settings = processes, settings
        self.workers = [self._start() for _ in range(count)]
        self.crashes: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _start(self, wait: bool = True) -> subprocess.Popen:
        return self.processes.start(
            [], self.settings, module="tests.reliability.poison_worker",  # type: ignore[arg-type]
            wait_line="worker ready" if wait else None,
        )

    def _watch(self) -> None:
        while not self.stop.is_set():
            for i, proc in enumerate(self.workers):
                if proc.poll() is not None:
                    self.crashes.append(proc.returncode)
                    self.workers[i] = self._start(wait=False)
            time.sleep(0.1)


def test_poison_image_fails_12005_and_nothing_else_stalls(
    redis_server: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_server.url,
        tasks={"visibility_timeout_s": 1.0, "max_deliveries": 3},
        worker={"models_dir": str(tmp_path), "claim_interval_s": 0.3},
    )
    processes.start(["grpc"], settings, wait_port=settings.grpc.port)
    supervisor = Supervisor(processes, settings, count=2)
    channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
    try:
        poison = client.SubmitAnalysis(submit_request(HOOK, image_data=png_bytes(POISON_WIDTH, 300))).task_id
        good = [client.SubmitAnalysis(submit_request(HOOK, image_data=png_bytes(320 + i, 300))).task_id
                for i in range(8)]
        for task_id in good:  # finish while the poison job is still crashing workers
            assert wait_status(client, task_id, FINAL, timeout=30).status == task_pb2.SUCCEEDED
        task = wait_status(client, poison, FINAL, timeout=60)
        assert (task.status, task.error.code) == (task_pb2.FAILED, 12005)
        assert supervisor.crashes and set(supervisor.crashes) == {70}
        assert len(supervisor.crashes) <= settings.tasks.max_deliveries
        more = client.SubmitAnalysis(submit_request(HOOK)).task_id  # the restarted workers still serve
        assert wait_status(client, more, FINAL, timeout=30).status == task_pb2.SUCCEEDED
    finally:
        supervisor.stop.set()
        supervisor.thread.join()
        channel.close()
    r = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    assert [e[1][b"task"].decode() for e in r.xrange(keys.dead_letter)] == [str(open_ref(poison))]
    assert queue_drained(r, keys)


class OwnRedis:
    """A redis-server with AOF whose fsync policy and stop signal the test chooses."""

    def __init__(self, directory: Path, fsync: str) -> None:
        self.directory, self.fsync, self.port = directory, fsync, free_port()
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes", "--appendfsync", self.fsync, "--protected-mode", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)


@pytest.mark.parametrize(("fsync", "sig"), [("everysec", signal.SIGTERM), ("always", signal.SIGKILL)],
                         ids=["graceful-everysec", "sigkill-always"])
def test_redis_restart_mid_run_loses_no_accepted_task(
    processes: Processes, tmp_path: Path, fsync: str, sig: int
) -> None:
    own = OwnRedis(tmp_path / "redis", fsync)
    own.start()
    try:
        # A job whose result could not be stored during the outage is re-run after the visibility
        # timeout (see the xfail test below), so keep it short here.
        settings = make_settings(
            own.url, tasks={"visibility_timeout_s": 2.0}, worker={"models_dir": str(tmp_path)}
        )
        processes.start(["grpc"], settings, wait_port=settings.grpc.port)
        processes.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready",
                        extra_env={"ECHO_TEST_SLEEP_S": "0.05"})
        channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
        accepted, refused = [], []
        for i in range(40):
            if i == 15:
                own.stop(sig)  # mid-run: some tasks done, some queued, one maybe running
            if i == 22:
                own.start()
            try:
                accepted.append(client.SubmitAnalysis(submit_request(HOOK), timeout=5).task_id)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE  # 10008: nothing accepted
                refused.append(i)
            time.sleep(0.05)
        assert len(accepted) >= 30 and refused, (len(accepted), refused)
        finals = [wait_status(client, t, FINAL, timeout=30) for t in accepted]
        assert all(t.status == task_pb2.SUCCEEDED for t in finals)
        r = redis.Redis.from_url(own.url)
        keys = Keys(settings.key_prefix)
        assert r.zcard(keys.callback_schedule) == len(accepted)  # one callback each, none lost
        assert queue_drained(r, keys)
        channel.close()
    finally:
        own.stop()


# Regression: a RedisError from store.finish/ack used to escape Worker.handle(); the computed result
# was dropped and the task sat RUNNING for visibility_timeout_s (300 s) before being re-run.
def test_result_computed_during_an_outage_is_stored_when_redis_returns(
    processes: Processes, tmp_path: Path
) -> None:
    own = OwnRedis(tmp_path / "redis", "always")
    own.start()
    try:
        settings = make_settings(own.url, worker={"models_dir": str(tmp_path)})  # visibility 300 s
        processes.start(["grpc"], settings, wait_port=settings.grpc.port)
        processes.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready",
                        extra_env={"ECHO_TEST_SLEEP_S": "1.5"})
        channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
        task_id = client.SubmitAnalysis(submit_request(HOOK)).task_id
        wait_status(client, task_id, {task_pb2.RUNNING})
        own.stop()
        time.sleep(2.5)  # the pipeline finishes while Redis is down
        own.start()
        assert wait_status(client, task_id, FINAL, timeout=15).status == task_pb2.SUCCEEDED
        channel.close()
    finally:
        own.stop()
