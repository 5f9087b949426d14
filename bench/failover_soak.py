"""Failover soak: the service on a Sentinel-managed Redis while its primary, a replica and a Sentinel die.

    .venv/bin/python bench/failover_soak.py                          # real ceph worker, 300 tasks
    .venv/bin/python bench/failover_soak.py --pipeline echo --tasks 600 --rate 20
    .venv/bin/python bench/failover_soak.py --wait-replicas 0 --rounds lag    # durability off

Starts, as local processes on loopback: a Redis primary with two replicas and three Sentinels
(`redis-server --sentinel`, tests/reliability/sentinel_cluster.py; passwords on, down-after 1 s),
the gRPC server, two workers, the callback dispatcher and a callback receiver, all configured with
`redis.sentinels` (no Redis URL anywhere). Workers: the real one on ceph films from
../shared/data/ceph/isbi2015_640x800 (models/, ONNX Runtime on CPU, artifacts on), or the echo
test worker (tests/backbone/echo_worker.py, --pipeline echo). It submits --tasks at --rate over
gRPC with client taskIds, retrying a refused submission as a client would (same taskId and body),
and runs the fault rounds at even intervals during the submissions:

- `primary`: SIGKILL the primary; the Sentinels promote a replica; the dead node comes back as a
  replica of the new primary;
- `replica+sentinel`: SIGKILL a replica and a Sentinel at once; both come back 5 s later;
- `lag`: both replicas stop (SIGSTOP) and a 32 MB ballast value fills their links' socket buffers,
  so that what the primary accepts next stays in its own memory; 0.8 s later the primary is
  SIGKILLed and the replicas continue: the writes of that last 0.8 s exist nowhere else, the
  window asynchronous replication leaves open and redis.wait_replicas closes.

Then it waits until every accepted task is final and its callback delivered, and prints: accepted,
final, lost (accepted tasks without a final state or without a delivered callback), duplicate
callbacks (2xx deliveries of one webhook-id beyond the first), tasks delivered under two webhook-ids
(run twice: a receiver could not tell), the longest time without a writable primary seen by a
client (a probe writes every 20 ms through Sentinel), submissions refused with 10008 and, of those,
"not confirmed by a replica", and whether every task in Redis is whole. Exit status 1 when a task
was lost.
"""

from __future__ import annotations

import argparse
import json
import signal
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
import redis.sentinel  # noqa: E402

from dentalai.contract import FINAL_STATUSES  # noqa: E402
from dentalai.v1 import analysis_service_pb2 as pb  # noqa: E402
from dentalai.v1 import task_pb2  # noqa: E402
from grpc_server.connection import sync_redis_client  # noqa: E402
from grpc_server.keys import Keys  # noqa: E402
from tests.backbone.helpers import png_bytes, stub  # noqa: E402
from tests.conftest import (  # noqa: E402
    CallbackReceiver,
    Processes,
    _wait_line,
    make_settings,
    start_callback_receiver,
)
from tests.reliability.sentinel_cluster import MASTER_NAME, SentinelCluster  # noqa: E402

CEPH_FILMS = REPO.parent / "shared" / "data" / "ceph" / "isbi2015_640x800" / "images"
PASSWORD = "failover-soak-" + "0123456789abcdef" * 2  # test cluster only, loopback
ROUNDS = ("primary", "replica+sentinel", "lag")


@dataclass
class Log:
    t0: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)
    quiet: bool = False

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f}s {what}"
        self.lines.append(line)
        if not self.quiet:
            print("  " + line, flush=True)


class Probe:
    """Writes through Sentinel every 20 ms and keeps the times of the writes that succeeded: the
    longest gap is the longest time a client had no writable primary."""

    def __init__(self, cluster: SentinelCluster) -> None:
        sentinel = redis.sentinel.Sentinel(
            [("127.0.0.1", n.port) for n in cluster.watchers],
            sentinel_kwargs={"password": cluster.password, "socket_timeout": 0.25},
            password=cluster.password, socket_timeout=0.25, socket_connect_timeout=0.25,
        )  # fmt: skip
        self.client = sentinel.master_for(MASTER_NAME)
        self.ok: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.incr("failover-soak:probe")
                self.ok.append(time.monotonic())
            except redis.RedisError:
                pass
            time.sleep(0.02)

    def longest_gap(self, start: float | None = None, end: float | None = None) -> float:
        times = [t for t in self.ok if (start is None or t >= start) and (end is None or t <= end)]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


@dataclass
class Submissions:
    accepted: set[str] = field(default_factory=set)
    refused: Counter = field(default_factory=Counter)  # gRPC code name -> attempts
    not_durable: int = 0  # 10008 "not yet confirmed by ... replica(s)"
    given_up: list[str] = field(default_factory=list)


def submit_all(
    args: argparse.Namespace, target: str, hook: str, requests: list[pb.SubmitAnalysisRequest],
    faults: dict[int, Any], subs: Submissions, log: Log,
) -> None:  # fmt: skip
    channel, client = stub(target)
    interval = 1.0 / args.rate
    start = time.monotonic()
    threads = []
    for i, request in enumerate(requests):
        if i in faults:  # in its own thread: submissions go on during the fault
            threads.append(threading.Thread(target=faults[i], daemon=True))
            threads[-1].start()
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = client.SubmitAnalysis(request, timeout=10)
                subs.accepted.add(reply.task_id)
                break
            except grpc.RpcError as err:
                subs.refused[err.code().name] += 1
                if "not yet confirmed" in (err.details() or ""):
                    subs.not_durable += 1
                if time.monotonic() > deadline:
                    subs.given_up.append(request.task_id)
                    log.note(f"gave up on {request.task_id}: {err.code().name} {err.details()}")
                    break
                time.sleep(0.2)  # the client's retry: same taskId, same body
    for thread in threads:
        thread.join(timeout=120)
    channel.close()


def wait_final(target: str, ids: set[str], deadline: float) -> dict[str, task_pb2.Task]:
    channel, client = stub(target)
    done: dict[str, task_pb2.Task] = {}
    while time.monotonic() < deadline and len(done) < len(ids):
        for task_id in sorted(ids - done.keys()):
            try:
                task = client.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=5).task
            except grpc.RpcError:
                continue
            if task.status in FINAL_STATUSES:
                done[task_id] = task
        time.sleep(0.3)
    channel.close()
    return done


def deliveries(receiver: CallbackReceiver) -> tuple[dict[str, set[str]], Counter]:
    """taskId -> webhook-ids it was delivered under, and 2xx deliveries per webhook-id."""
    by_task: dict[str, set[str]] = {}
    per_id: Counter = Counter()
    for request in list(receiver.requests):
        webhook_id = request.headers.get("webhook-id", "")
        by_task.setdefault(json.loads(request.body)["taskId"], set()).add(webhook_id)
        per_id[webhook_id] += 1
    return by_task, per_id


def whole_tasks(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    """(task hashes in Redis, those missing a field every task has): nothing half-written."""
    total = broken = 0
    for key in r.scan_iter(match=f"{keys.prefix}task:*"):
        total += 1
        fields = r.hmget(key, ["task", "status", "request_hash", "callback"])
        broken += any(v is None for v in fields)
    return total, broken


def requests_for(args: argparse.Namespace, hook: str) -> list[pb.SubmitAnalysisRequest]:
    if args.pipeline == "real":
        films = sorted(CEPH_FILMS.glob("*.png"))
        if not films:
            raise SystemExit(f"no ceph films in {CEPH_FILMS}")
        images = [f.read_bytes() for f in films]
        options = task_pb2.AnalysisOptions(pixel_spacing_mm=0.3)
        return [
            pb.SubmitAnalysisRequest(
                task_type="ceph", image_data=images[i % len(images)], callback_url=hook,
                task_id=f"fo-{i:05d}", options=options,
            )  # fmt: skip
            for i in range(args.tasks)
        ]
    image = png_bytes(320, 300, seed=1)
    return [
        pb.SubmitAnalysisRequest(task_type="pano", image_data=image, callback_url=hook, task_id=f"fo-{i:05d}")
        for i in range(args.tasks)
    ]


def run(args: argparse.Namespace, workdir: Path, quiet: bool = False) -> dict[str, Any]:
    log = Log(quiet=quiet)
    cluster = SentinelCluster(workdir / "redis", password=PASSWORD, down_after_ms=args.down_after_ms).start()
    receiver = start_callback_receiver()
    real = args.pipeline == "real"
    settings = make_settings(
        "",
        redis={
            "sentinels": cluster.sentinel_addresses, "password": PASSWORD, "sentinel_password": PASSWORD,
            "wait_replicas": args.wait_replicas, "wait_timeout_ms": args.wait_timeout_ms,
        },
        # A job held by a worker when its writes were lost is taken over after this (not lost).
        tasks={"visibility_timeout_s": args.visibility_s, "task_timeout_s": 60},
        worker={"models_dir": str(REPO / "models" if real else workdir / "none"), "claim_interval_s": 1.0},
        callbacks={
            "retry_delays_s": [0.5, 1, 2, 4, 8], "jitter": 0.1, "poll_interval_s": 0.05,
            "timeout_s": 3, "lease_s": args.lease_s,
        },
        limits={"min_image_side": 16},
        artifacts={"enabled": real},
    )  # fmt: skip
    procs = Processes(log_dir=workdir)
    target = f"127.0.0.1:{settings.grpc.port}"
    worker_kw: dict[str, Any] = {} if real else {
        "module": "tests.backbone.echo_worker", "extra_env": {"ECHO_TEST_SLEEP_S": str(args.echo_sleep_s)},
    }  # fmt: skip
    worker_args = ["worker"] if real else []
    probe = Probe(cluster)
    subs = Submissions()
    fault_windows: list[tuple[str, float, float]] = []
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        workers = [procs.start(worker_args, settings, **worker_kw) for _ in range(args.workers)]
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        for worker in workers:
            _wait_line(worker, worker.log_path, "worker ready", 240)  # type: ignore[attr-defined]
        log.note(
            f"{args.tasks} tasks at {args.rate}/s, {'real ceph' if real else 'echo'} workers "
            f"x{args.workers}, wait_replicas {args.wait_replicas}, rounds {','.join(args.rounds)}"
        )
        probe.thread.start()

        def round_primary(lag: bool = False) -> None:
            start = time.monotonic()
            stopped = cluster.replica_nodes() if lag else []
            if lag:  # the replicas fall behind: stopped, their links' buffers full
                for node in stopped:
                    node.signal(signal.SIGSTOP)
                cluster.client(cluster.master(), 5).set("failover-soak:ballast", b"\0" * (32 << 20))
                time.sleep(0.8)  # below down-after: the Sentinels still see the replicas up
            old = cluster.kill_master()
            for node in stopped:
                node.signal(signal.SIGCONT)
            log.note(f"{old.name} (primary) killed{' with its replicas 0.8 s behind' if lag else ''}")
            new = cluster.wait_new_master(old)
            log.note(f"{new.name} promoted, {time.monotonic() - start:.1f}s after the fault began")
            cluster.restart(old)
            cluster.wait_healthy()
            log.note(f"{old.name} back as a replica")
            fault_windows.append(("lag" if lag else "primary", start, time.monotonic()))

        def round_replica_sentinel() -> None:
            start = time.monotonic()
            replica = cluster.replica_nodes()[0]
            watcher = cluster.watchers[0]
            replica.signal(signal.SIGKILL)
            watcher.signal(signal.SIGKILL)
            log.note(f"{replica.name} (replica) and {watcher.name} killed")
            time.sleep(5)
            cluster.restart(replica)
            cluster.restart(watcher)
            cluster.wait_healthy()
            log.note(f"{replica.name} and {watcher.name} back")
            fault_windows.append(("replica+sentinel", start, time.monotonic()))

        actions = {
            "primary": round_primary, "replica+sentinel": round_replica_sentinel,
            "lag": lambda: round_primary(lag=True),
        }  # fmt: skip
        step = args.tasks // (len(args.rounds) + 1)
        faults = {step * (k + 1): actions[name] for k, name in enumerate(args.rounds)}
        requests = requests_for(args, receiver.url)
        submit_start = time.monotonic()
        submit_all(args, target, receiver.url, requests, faults, subs, log)
        log.note(f"submitted: {len(subs.accepted)} accepted in {time.monotonic() - submit_start:.1f}s")
        deadline = time.monotonic() + args.time_limit
        finals = wait_final(target, subs.accepted, deadline)
        log.note(f"{len(finals)} final")
        while time.monotonic() < deadline and not set(finals) <= set(deliveries(receiver)[0]):
            time.sleep(0.3)
        time.sleep(args.settle_s)  # late re-deliveries (a lease that ran out) still count
        probe.stop.set()
        by_task, per_id = deliveries(receiver)
        r = sync_redis_client(settings)
        stored, broken = whole_tasks(r, Keys(settings.key_prefix))
        lost = sorted(t for t in subs.accepted if t not in finals or t not in by_task)
        statuses = Counter(task_pb2.TaskStatus.Name(t.status) for t in finals.values())
        return {
            "pipeline": "real ceph (ONNX Runtime CPU, artifacts)" if real else f"echo ({args.echo_sleep_s}s)",
            "wait_replicas": args.wait_replicas,
            "rounds": list(args.rounds),
            "submitted": args.tasks,
            "accepted": len(subs.accepted),
            "given_up": len(subs.given_up),
            "final": len(finals),
            "statuses": dict(statuses),
            "callbacks_delivered": sum(1 for t in subs.accepted if t in by_task),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "duplicate_callbacks": sum(n - 1 for n in per_id.values() if n > 1),
            "tasks_under_two_webhook_ids": sum(1 for ids in by_task.values() if len(ids) > 1),
            "deliveries_gt1": sum(1 for t in finals.values() if t.deliveries > 1),
            "refused_attempts": dict(subs.refused),
            "refused_10008": subs.refused.get("UNAVAILABLE", 0),
            "not_durable_10008": subs.not_durable,
            "longest_no_primary_s": round(probe.longest_gap(), 2),
            "no_primary_by_round_s": {
                name: round(probe.longest_gap(a - 0.1, b + 0.1), 2) for name, a, b in fault_windows
            },
            "tasks_in_redis": stored,
            "tasks_half_written": broken,
            "events": log.lines,
        }
    finally:
        probe.stop.set()
        procs.stop_all()
        receiver.server.shutdown()
        cluster.stop()


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--rate", type=float, default=3.0, help="submissions per second")
    p.add_argument("--pipeline", choices=["real", "echo"], default="real")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--echo-sleep-s", type=float, default=0.05)
    p.add_argument("--rounds", nargs="+", choices=ROUNDS, default=["primary", "replica+sentinel"])
    p.add_argument("--wait-replicas", type=int, default=1, help="redis.wait_replicas (0 = off)")
    p.add_argument("--wait-timeout-ms", type=int, default=1000)
    p.add_argument("--down-after-ms", type=int, default=1000, help="Sentinel down-after-milliseconds")
    p.add_argument("--visibility-s", type=float, default=10.0, help="tasks.visibility_timeout_s")
    p.add_argument("--lease-s", type=float, default=5.0, help="callbacks.lease_s")
    p.add_argument("--settle-s", type=float, default=6.0, help="wait for late re-deliveries at the end")
    p.add_argument("--time-limit", type=float, default=300, help="seconds to wait for the last results")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p


def main() -> int:
    args = parser().parse_args()
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        report = run(args, Path(tmp))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
