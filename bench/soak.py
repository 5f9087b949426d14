"""Soak benchmark: the whole service under a steady load with faults, then the queue alone vs Celery.

    .venv/bin/python bench/soak.py                       # defaults: ~3 min on 2 cores
    .venv/bin/python bench/soak.py --tasks 200 --rate 5 --queue-jobs 5000

Part 1 starts everything itself on loopback: redis-server (AOF, free port), the gRPC server, a
worker, the REST bridge and callback dispatcher when those modules exist, and a callback receiver.
It submits K tasks at a set rate (gRPC SubmitAnalysis with client taskIds, retried on 10008 as a
client would: same taskId and body, so a retry never creates a second task) while injecting faults
on a schedule: kill -9 the worker and restart it; restart Redis (AOF); receiver answers 500 for a
while. Then it waits for every accepted task to reach a final state and prints accepted,
completed, callbacks delivered, duplicates, lost (must be 0) and p50/p99 submit latency.

Pipelines: the real ones (ONNX Runtime on CPU) for taskType pano when models/ has them, else the
echo test pipeline of tests/backbone/echo_worker.py (`--pipeline echo` forces it).

Part 2 compares the queue alone with no-op jobs, one producer and one consumer each, on the same
Redis in the same run: this project's Redis Streams queue (grpc_server.queue.JobQueue: XADD,
XREADGROUP, XACK+XDEL) vs Celery (redis broker, solo worker), in jobs per second and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import redis  # noqa: E402

from dentalai.contract import FINAL_STATUSES  # noqa: E402
from dentalai.v1 import analysis_service_pb2 as pb  # noqa: E402
from dentalai.v1 import task_pb2  # noqa: E402
from grpc_server.keys import CONSUMER_GROUP, Keys  # noqa: E402
from tests.backbone.helpers import png_bytes, stub  # noqa: E402
from tests.conftest import (  # noqa: E402
    CallbackReceiver,
    Processes,
    make_settings,
    start_callback_receiver,
    start_redis,
)

FINAL = FINAL_STATUSES  # the contract's set (dentalai.contract)
BENCH_CLIENT = "bench"


@dataclass
class Run:
    accepted: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.faults.append(f"{time.monotonic() - self.t0:6.1f}s {what}")
        print(f"  [{time.monotonic() - self.t0:6.1f}s] {what}", flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def has_models() -> bool:
    return any((REPO / "models").glob("*/manifest.json"))


class Faults:
    """The receiver's 500 window, and the status each callback request was answered with."""

    def __init__(self, receiver: CallbackReceiver) -> None:
        self.receiver = receiver
        self.fail_until = 0.0
        local = threading.local()
        original_answer, original_record = receiver.next_answer, receiver.record

        def record(request: Any) -> None:  # the handler thread records, then asks for its answer
            local.request = request
            original_record(request)

        def answer() -> tuple[int, dict[str, str], float]:
            failing = time.monotonic() < self.fail_until
            status, headers, delay = (500, {}, 0.0) if failing else original_answer()
            local.request.status = status
            return status, headers, delay

        receiver.record = record  # type: ignore[method-assign]
        receiver.next_answer = answer  # type: ignore[method-assign]


def submit_all(args: argparse.Namespace, target: str, hook: str, run: Run, schedule: dict[int, Any]) -> None:
    channel, client = stub(target)
    image = png_bytes(640, 480, seed=1)
    interval = 1.0 / args.rate
    for i in range(args.tasks):
        if i in schedule:  # in its own thread: submissions go on during the fault
            threading.Thread(target=schedule[i], daemon=True).start()
        due = run.t0 + i * interval
        time.sleep(max(0.0, due - time.monotonic()))
        request = pb.SubmitAnalysisRequest(
            task_type="pano", image_data=image, callback_url=hook, task_id=f"soak-{i:05d}"
        )
        for _attempt in range(200):
            start = time.perf_counter()
            try:
                reply = client.SubmitAnalysis(request, timeout=5)
            except grpc.RpcError as err:
                run.refused[err.code().name] += 1
                time.sleep(0.25)
                continue
            run.latencies_ms.append((time.perf_counter() - start) * 1000)
            run.accepted.add(reply.task_id)
            break
    channel.close()


def wait_final(target: str, ids: set[str], deadline: float) -> dict[str, task_pb2.Task]:
    channel, client = stub(target)
    done: dict[str, task_pb2.Task] = {}
    while time.monotonic() < deadline and len(done) < len(ids):
        for task_id in sorted(ids - done.keys()):
            try:
                task = client.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=5).task
            except grpc.RpcError:
                break
            if task.status in FINAL:
                done[task_id] = task
        time.sleep(0.5)
    channel.close()
    return done


def delivered(receiver: CallbackReceiver) -> tuple[list[Any], set[str], Counter]:
    """Callback POSTs, task ids delivered (answered 2xx), and 2xx deliveries per webhook-id."""
    posts = [q for q in receiver.requests if q.path == "/hook"]
    ok = [q for q in posts if getattr(q, "status", 200) < 300]
    ids = Counter(q.headers.get("webhook-id") for q in ok)
    return posts, {json.loads(q.body).get("taskId") for q in ok}, ids


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import importlib.util

    redis_server = start_redis(workdir / "redis", appendonly=True)
    receiver = start_callback_receiver()
    faults = Faults(receiver)
    real = args.pipeline == "real" or (args.pipeline == "auto" and has_models())
    settings = make_settings(
        redis_server.url,
        tasks={"visibility_timeout_s": 6.0, "task_timeout_s": 60},
        worker={"models_dir": str(REPO / "models" if real else workdir / "empty"), "claim_interval_s": 1.0},
        callbacks={"retry_delays_s": [1, 2, 4, 8, 8], "jitter": 0.2, "poll_interval_s": 0.1},
    )
    procs = Processes(log_dir=workdir)
    target = f"127.0.0.1:{settings.grpc.port}"
    worker_args: dict[str, Any] = {} if real else {"module": "tests.backbone.echo_worker"}
    worker_cmd = ["worker"] if real else []
    run = Run()
    dispatcher = importlib.util.find_spec("grpc_server.dispatcher") is not None
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        worker = procs.start(worker_cmd, settings, wait_line="worker ready", timeout=180, **worker_args)
        if dispatcher:
            procs.start(["dispatcher"], settings)
        pipeline = "real (pano, ONNX Runtime CPU)" if real else "echo test"
        hooks = "yes" if dispatcher else "absent (callbacks only scheduled)"
        print(f"soak: {args.tasks} tasks at {args.rate}/s, pipeline {pipeline}, dispatcher {hooks}")

        stats, stats_key = redis.Redis.from_url(settings.redis_url), Keys(settings.key_prefix).task_stats

        def kill_worker() -> None:
            nonlocal worker
            deadline = time.monotonic() + 5  # kill it mid-task when it gets one within 5 s
            while time.monotonic() < deadline and int(stats.hget(stats_key, "RUNNING") or 0) < 1:
                time.sleep(0.01)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            run.note("worker killed (SIGKILL); restarting")
            worker = procs.start(worker_cmd, settings, wait_line=None, **worker_args)

        def restart_redis() -> None:
            redis_server.stop()
            run.note("redis stopped (SIGTERM, AOF everysec)")
            time.sleep(args.redis_down_s)
            redis_server.start()
            run.note("redis restarted")

        def receiver_500() -> None:
            faults.fail_until = time.monotonic() + args.receiver_500_s
            run.note(f"receiver answers 500 for {args.receiver_500_s}s")

        k = args.tasks
        schedule = {int(k * 0.25): kill_worker, int(k * 0.5): restart_redis, int(k * 0.7): receiver_500}
        run.t0 = time.monotonic()
        submit_all(args, target, receiver.url, run, schedule)
        submit_s = time.monotonic() - run.t0
        run.note(f"all submitted ({len(run.accepted)} accepted)")
        deadline = run.t0 + args.time_limit
        finals = wait_final(target, run.accepted, deadline)
        run.note(f"{len(finals)} final")
        statuses = Counter(
            f"{task_pb2.TaskStatus.Name(t.status)}{'/' + str(t.error.code) if t.error.code else ''}"
            for t in finals.values()
        )
        r = redis.Redis.from_url(settings.redis_url)
        keys = Keys(settings.key_prefix)
        if dispatcher:  # every final task's callback, 500 window and retries included
            while time.monotonic() < deadline + 30 and len(delivered(receiver)[1]) < len(finals):
                time.sleep(0.5)
        posts, per_task, delivered_ids = delivered(receiver)
        scheduled = r.zcard(keys.callback_schedule)
        return {
            "submitted": k,
            "accepted": len(run.accepted),
            "refused_attempts": dict(run.refused),
            "completed": len(finals),
            "statuses": dict(statuses),
            "callbacks_delivered": len(per_task) if dispatcher else None,
            "callback_posts": len(posts),
            "duplicates": (sum(delivered_ids.values()) - len(delivered_ids)) if dispatcher else None,
            "callbacks_still_scheduled": scheduled,
            "lost": len(run.accepted) - len(finals) + (len(finals) - len(per_task) if dispatcher else 0),
            "deliveries_gt1": sum(1 for t in finals.values() if t.deliveries > 1),
            "submit_p50_ms": round(percentile(run.latencies_ms, 50), 2),
            "submit_p99_ms": round(percentile(run.latencies_ms, 99), 2),
            "submit_window_s": round(submit_s, 1),
            "faults": run.faults,
        }
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        redis_server.stop()


# ---- part 2: the queue alone ------------------------------------------------------------------


async def _stream_consumer(url: str, prefix: str, n: int) -> None:
    from grpc_server.queue import JobQueue

    client = redis.asyncio.Redis.from_url(url)
    keys = Keys(prefix)
    queue = JobQueue(client, keys)
    # What store.create does on a client's first job: its stream, group and place in the rotation.
    await client.xgroup_create(keys.queue(BENCH_CLIENT), CONSUMER_GROUP, id="0", mkstream=True)
    await client.lpush(keys.queue_rotation, BENCH_CLIENT)
    await client.set(prefix + "ready", "1")
    done = 0
    while done < n:
        job = await queue.read("bench-consumer", 1000)
        if job is not None:
            await queue.ack(job)
            done += 1
    await client.set(prefix + "done", "1")
    await client.aclose()


def _wait_key(r: redis.Redis, key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not r.exists(key):
        if time.monotonic() > deadline:
            raise TimeoutError(key)
        time.sleep(0.002)


def streams_rate(url: str, n: int) -> float:
    prefix = f"bench:{time.time_ns()}:"
    keys = Keys(prefix)
    consumer = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--stream-consumer", url, prefix, str(n)], cwd=REPO
    )
    r = redis.Redis.from_url(url)
    try:
        _wait_key(r, prefix + "ready", 30)
        start = time.perf_counter()
        for i in range(n):
            # The entry and the wake token the service's store.create adds (in its Lua script).
            r.xadd(keys.queue(BENCH_CLIENT), {"task": f"{BENCH_CLIENT}/noop-{i}"})
            r.lpush(keys.queue_wake, b"1")
        _wait_key(r, prefix + "done", 120)
        return n / (time.perf_counter() - start)
    finally:
        consumer.wait(timeout=30)


def celery_rate(url: str, n: int, workdir: Path) -> float | None:
    try:
        import celery  # noqa: F401
    except ImportError:
        return None
    done_key = f"bench:celery:{time.time_ns()}:done"
    env = dict(os.environ, SOAK_CELERY_BROKER=url, SOAK_CELERY_DONE_KEY=done_key)
    log = workdir / "celery.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "soak_celery", "worker", "--pool=solo", "--concurrency=1",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=REPO / "bench", env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    os.environ.update(SOAK_CELERY_BROKER=url, SOAK_CELERY_DONE_KEY=done_key)
    sys.path.insert(0, str(REPO / "bench"))
    from soak_celery import noop

    r = redis.Redis.from_url(url)
    try:
        noop.delay()  # warm-up: wait until the worker consumes
        deadline = time.monotonic() + 60
        while r.llen("celery") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        start = time.perf_counter()
        for i in range(n):
            noop.delay(last=i == n - 1)
        _wait_key(r, done_key, 300)
        return n / (time.perf_counter() - start)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def queue_compare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = start_redis(workdir / "redis-queue", appendonly=True)
    try:
        streams = streams_rate(server.url, args.queue_jobs)
        cel = celery_rate(server.url.rsplit("/", 1)[0] + "/1", args.queue_jobs, workdir)
    finally:
        server.stop()
    return {
        "jobs": args.queue_jobs,
        "redis_streams_jobs_per_s": round(streams, 1),
        "celery_jobs_per_s": round(cel, 1) if cel else None,
        "streams_over_celery": round(streams / cel, 2) if cel else None,
    }


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--tasks", type=int, default=300, help="K tasks submitted (default 300)")
    parser.add_argument("--rate", type=float, default=3.0, help="submissions per second (default 3)")
    parser.add_argument("--pipeline", choices=["auto", "real", "echo"], default="auto")
    parser.add_argument("--time-limit", type=float, default=150, help="seconds for part 1 in all")
    parser.add_argument("--redis-down-s", type=float, default=2.0)
    parser.add_argument("--receiver-500-s", type=float, default=5.0)
    parser.add_argument("--queue-jobs", type=int, default=2000, help="no-op jobs per queue in part 2")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--stream-consumer", nargs=3, metavar=("URL", "PREFIX", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_consumer:
        url, prefix, n = args.stream_consumer
        asyncio.run(_stream_consumer(url, prefix, int(n)))
        return 0
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        report: dict[str, Any] = {}
        if not args.skip_soak:
            report["soak"] = soak(args, workdir)
        report["queue"] = queue_compare(args, workdir)
    print(json.dumps(report, indent=2))
    soak_report = report.get("soak")
    return 1 if soak_report and soak_report["lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
