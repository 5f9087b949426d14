"""Submit latency: concurrent clients POSTing to /api/v1/analyze over loopback, the REST bridge
(through gRPC to Redis) against a bare FastAPI endpoint (bench/bare_endpoint.py) in the same run.

    .venv/bin/python bench/submit_latency.py                 # defaults: about 1 minute
    .venv/bin/python bench/submit_latency.py --rate 200 --seconds 10 --concurrency 64 --payload-kb 64

Starts its own redis-server, `dentalai grpc` and `dentalai api` (no worker: accepted tasks stay
QUEUED, the queue cap is raised so none is refused) and the bare endpoint, each its own process.
Two phases per target:
- open loop: requests sent on a fixed schedule at --rate per second for --seconds; latency is
  measured from the scheduled send time, so a client that falls behind counts (no coordinated
  omission); p50/p99 and the achieved rate;
- closed loop: --concurrency clients sending back to back for --seconds; throughput.
Prints both targets and the ratios bridge/bare, and the CPU each server process spent per request
in the closed loop (from /proc: it says which process a change moved, though it too rises when
other work shares the cores). Targets (issue 2): p99 under 50 ms at 200 requests/s offered, and
at least 40 % of the bare endpoint's throughput. The load generator runs on the same 2 cores
as the servers, so absolute numbers are pessimistic; the ratio is the measure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.soak import percentile  # noqa: E402
from tests.conftest import Processes, free_port, make_settings, start_redis  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    latencies_ms: list[float]
    errors: int
    seconds: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per request, by server process

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def line(self, name: str) -> str:
        return (
            f"{name:<28} ok {len(self.latencies_ms):6d}  errors {self.errors:4d}  "
            f"{self.rate:7.1f} req/s  p50 {percentile(self.latencies_ms, 50):7.2f} ms  "
            f"p99 {percentile(self.latencies_ms, 99):7.2f} ms"
        )


def make_body(payload_kb: int) -> bytes:
    image = base64.b64encode(os.urandom(payload_kb * 1024)).decode()
    body = {"taskType": "pano", "imageBase64": image, "callbackUrl": "https://clinic.example/hook"}
    return json.dumps(body).encode()


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator shares the 2 cores
    with the servers, and httpx's per-request overhead (about 1 ms of CPU) would dominate."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port = port
        self.request = (
            b"POST /api/v1/analyze HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self) -> bool:
        """One request; True for a 202. A broken connection is reopened on the next call."""
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            return status == 202
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return False

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def open_loop(port: int, body: bytes, rate: float, seconds: float, concurrency: int) -> Phase:
    latencies: list[float] = []
    errors = 0
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        idle.put_nowait(Connection(port, body))

    async def one(due: float) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        connection = await idle.get()  # all busy: the wait counts in the latency
        ok = await connection.post()
        idle.put_nowait(connection)
        if ok:
            latencies.append((time.perf_counter() - due) * 1000)
        else:
            errors += 1

    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate) for i in range(int(rate * seconds))))
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return Phase(latencies, errors, elapsed)


async def closed_loop(port: int, body: bytes, seconds: float, concurrency: int) -> Phase:
    latencies: list[float] = []
    errors = 0

    async def client_loop(until: float) -> None:
        nonlocal errors
        connection = Connection(port, body)
        while time.perf_counter() < until:
            t = time.perf_counter()
            if await connection.post():
                latencies.append((time.perf_counter() - t) * 1000)
            else:
                errors += 1
        connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client_loop(start + seconds) for _ in range(concurrency)))
    return Phase(latencies, errors, time.perf_counter() - start)


async def warm_up(port: int, body: bytes) -> None:
    connection = Connection(port, body)
    for _ in range(50):
        await connection.post()
    connection.close()


def measure(port: int, body: bytes, args: argparse.Namespace, pids: dict[str, int]) -> dict[str, Phase]:
    asyncio.run(warm_up(port, body))
    opened = asyncio.run(open_loop(port, body, args.rate, args.seconds, args.concurrency))
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    closed = asyncio.run(closed_loop(port, body, args.seconds, args.concurrency))
    n = max(1, len(closed.latencies_ms) + closed.errors)
    closed.cpu_ms = {name: 1000 * (cpu_seconds(pid) - before[name]) / n for name, pid in pids.items()}
    return {"open": opened, "closed": closed}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200, help="offered requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections / closed-loop clients")
    parser.add_argument("--payload-kb", type=int, default=64, help="image bytes per request (base64 in JSON)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()

    body = make_body(args.payload_kb)
    workdir = Path(tempfile.mkdtemp(prefix="submit-latency-"))
    redis_server = start_redis(workdir / "redis")
    procs = Processes(log_dir=workdir)
    settings = make_settings(
        redis_server.url,
        limits={"queue_max_length": 10_000_000},
        log={"level": "WARNING"},
    )
    bare_port = free_port()
    results: dict[str, dict[str, Phase]] = {}
    try:
        grpc_proc = procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        api_proc = procs.start(["api"], settings, wait_port=settings.api.port)
        bare_proc = procs.start(
            [
                "bench.bare_endpoint:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            settings,
            wait_port=bare_port,
            module="uvicorn",
        )
        print(
            f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; body "
            f"{len(body) / 1024:.0f} KiB; open loop {args.rate:.0f} req/s for {args.seconds:.0f} s; "
            f"closed loop {args.concurrency} clients",
            flush=True,
        )
        assert redis_server.proc is not None
        targets = (
            ("bare", bare_port, {"bare": bare_proc.pid}),
            ("bridge", settings.api.port,
             {"api": api_proc.pid, "grpc": grpc_proc.pid, "redis": redis_server.proc.pid}),
        )
        for name, port, pids in targets:
            results[name] = measure(port, body, args, pids)
            print(results[name]["open"].line(f"{name} open loop"), flush=True)
            print(results[name]["closed"].line(f"{name} closed loop"), flush=True)
            cpu = results[name]["closed"].cpu_ms
            print(f"{'':<28} CPU per request: " + ", ".join(f"{k} {v:.3f} ms" for k, v in cpu.items())
                  + f" (total {sum(cpu.values()):.3f} ms)", flush=True)
    finally:
        procs.stop_all()
        redis_server.stop()

    bridge, bare = results["bridge"], results["bare"]
    p99 = percentile(bridge["open"].latencies_ms, 99)
    share = bridge["closed"].rate / bare["closed"].rate
    print(
        f"bridge p99 at {args.rate:.0f} req/s offered: {p99:.2f} ms (target < 50 ms: {p99 / 50:.2f}x of it)"
    )
    print(f"bridge / bare throughput: {share:.2f} (target >= 0.40)")
    cpu_ratio = sum(bare["closed"].cpu_ms.values()) / max(1e-9, sum(bridge["closed"].cpu_ms.values()))
    print(f"bare / bridge server CPU per request: {cpu_ratio:.2f}")
    print(
        f"bridge / bare p99 at {args.rate:.0f} req/s: {p99 / percentile(bare['open'].latencies_ms, 99):.2f}x"
    )
    if args.json:
        out: dict[str, Any] = {
            name: {
                phase: {
                    "ok": len(p.latencies_ms),
                    "errors": p.errors,
                    "rate": p.rate,
                    "p50_ms": percentile(p.latencies_ms, 50),
                    "p99_ms": percentile(p.latencies_ms, 99),
                    "cpu_ms_per_request": p.cpu_ms,
                }
                for phase, p in phases.items()
            }
            for name, phases in results.items()
        }
        out["throughput_ratio"] = share
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
