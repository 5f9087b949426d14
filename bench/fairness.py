"""Fair share: how long one client's task waits behind another client's backlog.

    .venv/bin/python bench/fairness.py                      # 200 tasks of A, then one of B; 1 and 2 workers
    .venv/bin/python bench/fairness.py --backlog 200 --workers 1 2 4 --sleep-s 0.05

Starts a redis-server, the gRPC server and N echo-test workers (tests/backbone/echo_worker.py,
each task sleeps --sleep-s instead of running a model) with two clients, A and B. A submits
--backlog tasks at once, then B submits one. The figure is B's wait counted in tasks: how many of
A's tasks started after B's was accepted and before B's started (the tasks' createdAt and
startedAt). The baseline, measured in the same
run on the same processes, is the queue without clients' turns: B's task submitted with A's key,
so it joins A's stream behind the backlog (what every client got before per-client streams).
Aim: B waits at most about one task per worker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dentalai.v1 import analysis_service_pb2 as pb  # noqa: E402
from dentalai.v1 import task_pb2  # noqa: E402
from tests.backbone.helpers import png_bytes, stub  # noqa: E402
from tests.conftest import Processes, api_key, client_entry, make_settings, start_redis  # noqa: E402

KEY_A, KEY_B = api_key("bench-clinic-a"), api_key("bench-clinic-b")
HOOK = "http://127.0.0.1:9/hook"  # never answered: the dispatcher does not run here


def ms(stamp) -> int:  # noqa: ANN001 (a protobuf Timestamp)
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def one_round(client, prefix: str, backlog: int, b_key: str, image: bytes) -> int:  # noqa: ANN001
    """Submit the backlog as A and one task with b_key; wait for all; A's tasks that started after
    B's was accepted and before it started (those A started while its backlog was still being
    submitted did not make B wait)."""
    as_a, as_b = (("authorization", f"Bearer {KEY_A}"),), (("authorization", f"Bearer {b_key}"),)
    request = pb.SubmitAnalysisRequest(task_type="pano", image_data=image, callback_url=HOOK)
    ids = []
    for i in range(backlog):
        request.task_id = f"{prefix}-a{i}"
        ids.append(client.SubmitAnalysis(request, metadata=as_a).task_id)
    request.task_id = f"{prefix}-b"
    b_id = client.SubmitAnalysis(request, metadata=as_b).task_id
    final = {task_pb2.SUCCEEDED, task_pb2.FAILED}

    def wait(task_id: str, md: tuple) -> task_pb2.Task:
        while True:
            task = client.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md).task
            if task.status in final:
                return task
            time.sleep(0.05)

    b = wait(b_id, as_b)
    b_created, b_started = ms(b.created_at), ms(b.started_at)
    return sum(b_created <= ms(wait(task_id, as_a).started_at) < b_started for task_id in ids)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--backlog", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sleep-s", type=float, default=0.05, help="stand-in inference time per task")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fairness-"))
    redis_server = start_redis(workdir / "redis")
    auth = {"clients": [client_entry("clinic-a", KEY_A), client_entry("clinic-b", KEY_B)]}
    image = png_bytes(320, 300)
    print(f"fairness: A submits {args.backlog}, then B one; echo workers sleep {args.sleep_s} s per task")
    print("workers  B waited (tasks)  baseline: B in A's stream  ratio  aim (<= workers)")
    try:
        for n in args.workers:
            settings = make_settings(
                redis_server.url, auth=auth, worker={"models_dir": str(workdir / "none")},
                limits={"min_image_side": 16}, artifacts={"enabled": False},
            )
            procs = Processes(log_dir=workdir)
            env = {"ECHO_TEST_SLEEP_S": str(args.sleep_s)}
            try:
                procs.start(["grpc"], settings, wait_port=settings.grpc.port)
                for _ in range(n):
                    procs.start([], settings, module="tests.backbone.echo_worker", wait_line="worker ready",
                                timeout=60, extra_env=env)
                channel, client = stub(f"127.0.0.1:{settings.grpc.port}")
                fair = one_round(client, f"fair{n}", args.backlog, KEY_B, image)
                fifo = one_round(client, f"fifo{n}", args.backlog, KEY_A, image)
                channel.close()
            finally:
                procs.stop_all()
            ratio = fair / fifo if fifo else float("nan")
            verdict = "met" if fair <= n else "NOT met"
            print(f"{n:>7}  {fair:>16}  {fifo:>25}  {ratio:5.3f}  {verdict}")
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
