"""Scale-out by simulation: N workers whose pipeline takes 200 ms, against the ideal N / 0.2 tasks/s.

    .venv/bin/python bench/scaleout.py                              # N = 1 2 4 8 16 32
    .venv/bin/python bench/scaleout.py --workers 16 --rounds 40 --sleep-s 0.2

For each N: a fresh redis-server (loopback, no persistence), the gRPC server and N echo-test
workers (tests/backbone/echo_worker.py with ECHO_TEST_SLEEP_S; artifacts off, so a task costs the
worker its queue and store steps, the image decode and the sleep). The workers start, report ready
and are stopped (SIGSTOP); --rounds x N tasks are submitted over gRPC (8 threads); then the
workers continue (SIGCONT) and the clock runs until the last task is final. The figures:

- tasks/s and its share of the ideal N / sleep_s (the clock includes the first and last 0.2 s);
- Redis commands per task in the processing phase (INFO commandstats deltas), by command;
- CPU per task (utime + stime from /proc/PID/stat) of the workers and of redis-server while the
  workers ran, and of the gRPC server and redis-server while the tasks were submitted;
- CPU in use during processing (cores), against the machine's cores (os.cpu_count()), and the load
  average before the run: other processes share this machine.

Where the cores run out first, the ceilings are extrapolated: cores / (CPU per task) for the whole
processing side, 1 core / (Redis CPU per task) for Redis, which runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from dentalai.v1 import analysis_service_pb2 as pb  # noqa: E402
from grpc_server.keys import Keys  # noqa: E402
from tests.backbone.helpers import png_bytes, stub  # noqa: E402
from tests.conftest import Processes, _wait_line, make_settings, start_redis  # noqa: E402

HOOK = "http://127.0.0.1:9/hook"  # never called: no dispatcher runs here
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    return {group: sum(cpu_s(p) for p in members) for group, members in pids.items()}


def commandstats(r: redis.Redis) -> Counter:
    return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()})


def submit(target: str, count: int, image: bytes, threads: int = 8) -> None:
    def one_share(share: range) -> None:
        channel, client = stub(target)
        request = pb.SubmitAnalysisRequest(task_type="pano", image_data=image, callback_url=HOOK)
        for i in share:
            request.task_id = f"so-{i:06d}"
            client.SubmitAnalysis(request, timeout=30)
        channel.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_share, [range(k, count, threads) for k in range(threads)]))


def one_n(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = start_redis(workdir / f"redis-{n}")
    r = redis.Redis(port=server.port)
    # The service's defaults for the worker loop (make_settings shortens them for tests).
    settings = make_settings(
        server.url,
        worker={"models_dir": str(workdir / "none"), "heartbeat_interval_s": 5, "block_ms": 1000,
                "claim_interval_s": 10},
        artifacts={"enabled": False}, limits={"min_image_side": 16, "queue_max_length": 100000},
    )  # fmt: skip
    keys = Keys(settings.key_prefix)
    procs = Processes(log_dir=workdir)
    total = args.rounds * n
    load = os.getloadavg()
    try:
        grpc_proc = procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        env = {"ECHO_TEST_SLEEP_S": str(args.sleep_s), "ECHO_TEST_TYPES": "pano"}
        echo = "tests.backbone.echo_worker"
        workers = [procs.start([], settings, module=echo, extra_env=env) for _ in range(n)]
        for w in workers:
            _wait_line(w, w.log_path, "worker ready", 300)  # type: ignore[attr-defined]
        time.sleep(1.0)  # past the first heartbeat and claim round
        for w in workers:
            w.send_signal(signal.SIGSTOP)
        redis_pid = server.proc.pid  # type: ignore[union-attr]
        pids = {"workers": [w.pid for w in workers], "redis": [redis_pid], "grpc": [grpc_proc.pid]}

        cpu0, t0 = cpu_of(pids), time.monotonic()
        submit(f"127.0.0.1:{settings.grpc.port}", total, png_bytes(64, 64, seed=n))
        cpu1, cmd1, t1 = cpu_of(pids), commandstats(r), time.monotonic()

        for w in workers:
            w.send_signal(signal.SIGCONT)
        start, polls = time.monotonic(), 0
        while int(r.hget(keys.task_stats, "SUCCEEDED") or 0) < total:
            polls += 1
            if time.monotonic() - start > args.time_limit:
                raise TimeoutError(f"N={n}: {r.hgetall(keys.task_stats)} after {args.time_limit}s")
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        cpu2, cmd2 = cpu_of(pids), commandstats(r)
        cmd2["hget"] -= polls + 1  # this loop's own reads are not the service's
        cmd2["info"] -= 1
    finally:
        for proc in procs.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        procs.stop_all()
        server.stop()

    rate = total / elapsed
    ideal = n / args.sleep_s
    work_cpu = (cpu2["workers"] - cpu1["workers"]) / total
    redis_cpu = (cpu2["redis"] - cpu1["redis"]) / total
    per_task = {c: round((cmd2[c] - cmd1[c]) / total, 2) for c in cmd2 if cmd2[c] - cmd1[c] >= total * 0.05}
    cores = os.cpu_count() or 1
    return {
        "workers": n,
        "tasks": total,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(rate, 1),
        "ideal_per_s": round(ideal, 1),
        "of_ideal": round(rate / ideal, 3),
        "redis_cmds_per_task": round(sum((cmd2 - cmd1).values()) / total, 1),
        "redis_cmds_by_command": dict(sorted(per_task.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_task": {
            "workers": round(work_cpu * 1000, 2),
            "redis_processing": round(redis_cpu * 1000, 3),
            "grpc_submit": round((cpu1["grpc"] - cpu0["grpc"]) / total * 1000, 2),
            "redis_submit": round((cpu1["redis"] - cpu0["redis"]) / total * 1000, 3),
        },
        "cores_in_use_processing": round((work_cpu + redis_cpu) * total / elapsed, 2),
        "machine_cores": cores,
        "loadavg_before": [round(x, 2) for x in load],
        "submit_s": round(t1 - t0, 2),
        "ceiling_cpu_per_s": round(cores / (work_cpu + redis_cpu), 0) if work_cpu + redis_cpu else None,
        "ceiling_redis_per_s": round(1 / redis_cpu, 0) if redis_cpu else None,
    }


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--rounds", type=int, default=25, help="tasks per worker (default 25: 5 s ideal)")
    parser.add_argument("--sleep-s", type=float, default=0.2, help="the stand-in pipeline's time per task")
    parser.add_argument("--time-limit", type=float, default=300)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    print(f"scale-out: echo workers sleeping {args.sleep_s}s per task, {args.rounds} tasks per worker, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("  N   tasks   s      tasks/s  ideal  of ideal  cmds/task  worker ms  redis ms  cores  load")
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        for n in args.workers:
            row = one_n(n, args, Path(tmp))
            rows.append(row)
            cpu = row["cpu_ms_per_task"]
            cells = [
                (n, 3), (row["tasks"], 7), (row["seconds"], 6), (row["tasks_per_s"], 9),
                (row["ideal_per_s"], 6), (row["of_ideal"], 9), (row["redis_cmds_per_task"], 10),
                (cpu["workers"], 10), (cpu["redis_processing"], 9), (row["cores_in_use_processing"], 6),
                (row["loadavg_before"][0], 5),
            ]
            print(" ".join(f"{value:>{width}}" for value, width in cells), flush=True)
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
