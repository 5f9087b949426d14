"""Shared fixtures: a real redis-server, Settings pointing at it, a real HTTP callback receiver on
loopback, and helpers that start the service's real processes.

- `redis_server` (session): a RedisServer started on a free port in a tmp dir (no persistence);
  `.url`, `.port`, `.stop()`, `.start()` (same port, for outage tests). `start_redis(dir, ...)`
  starts another one (e.g. `appendonly=True` for fault tests).
- `settings` (function): Settings from the defaults with redis_url = that server, a unique
  key_prefix per test, short timeouts, loopback allow-listed for SSRF, free gRPC/API ports.
  `settings_env(settings)` turns it into DENTALAI_* variables for child processes.
- `callback_receiver` (function): a CallbackReceiver (stdlib ThreadingHTTPServer) that records every
  POST (`.requests`, `.wait_for(n, timeout)`) and answers the status codes queued with
  `.respond(503, 503, 200)` (200 once the queue is empty), optionally with headers or a delay.
  It also serves GET for image URLs: `.files["/a.png"] = data` -> `.url_for("/a.png")`; 404 otherwise.
- `start_process(args, settings, wait_port=...)` (via the `processes` fixture): runs
  `python -m dentalai.cli <args>` (or any argv) with the settings in its environment, waits until
  it listens on `wait_port` (or prints `wait_line`), and kills it at the end of the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dentalai.api_keys import key_digest
from dentalai.config import OPEN_CLIENT_ID, Settings, load_config
from grpc_server.keys import CONSUMER_GROUP, Keys, TaskRef

REPO = Path(__file__).resolve().parents[1]
# The repository's packages import from the checkout even when the editable install predates them.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


# ---- redis ------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A real redis-server process in its own directory."""

    directory: Path
    port: int
    appendonly: bool = False
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--protected-mode", "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def start_redis(directory: Path, appendonly: bool = False) -> RedisServer:
    """Start a redis-server on a free port in `directory`; call `.stop()` when done."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory=directory, port=free_port(), appendonly=appendonly)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


# ---- settings ---------------------------------------------------------------------------------


def api_key(label: str) -> str:
    """A test API key as long as a real one (keys under 32 characters are refused)."""
    return f"{label}-{uuid.uuid5(uuid.NAMESPACE_URL, label).hex}"


def client_entry(client_id: str, *keys: str, **extra: Any) -> dict[str, Any]:
    """One `auth.clients` entry with the digests of `keys`."""
    return {"id": client_id, "key_sha256": [key_digest(k) for k in keys], **extra}


def open_ref(task_id: str) -> TaskRef:
    """The task `task_id` of the open mode's one client (make_settings' default)."""
    return TaskRef(OPEN_CLIENT_ID, task_id)


def queue_drained(r: Any, keys: Keys) -> bool:
    """No job of the open client is waiting or held (a sync redis client)."""
    stream = keys.queue(OPEN_CLIENT_ID)
    return r.xlen(stream) == 0 and r.xpending(stream, CONSUMER_GROUP)["pending"] == 0


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings for tests: unique key prefix, loopback allowed, free ports, short timeouts; the open
    development mode unless `auth` is given (then exactly that)."""
    base = load_config(environ={})
    grpc_port = free_port()
    defaults: dict[str, Any] = {
        "redis_url": redis_url,
        "key_prefix": f"test:{uuid.uuid4().hex[:10]}:",
        "grpc": {"port": grpc_port},
        "api": {"port": free_port(), "grpc_target": f"127.0.0.1:{grpc_port}"},
        "ssrf": {"allow_cidrs": ["127.0.0.0/8", "::1/128"]},
        "tasks": {"task_timeout_s": 20, "watch_poll_s": 0.05},
        "worker": {"heartbeat_interval_s": 0.5, "block_ms": 200, "claim_interval_s": 0.5},
        "callbacks": {"retry_delays_s": [0.2, 0.2], "jitter": 0.0, "poll_interval_s": 0.05, "timeout_s": 3},
        "fetch": {"timeout_s": 5},
    }
    if "auth" not in overrides:
        defaults["auth"] = {"open": True}
    merged = base.with_overrides(**defaults)
    return merged.with_overrides(**overrides) if overrides else merged


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server.url)


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process that loads exactly `settings` (as DENTALAI_<S>__<K>)."""
    source = base if base is not None else os.environ
    env = {k: v for k, v in source.items() if not k.startswith("DENTALAI_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, dict):
            for key, sub in value.items():
                env[f"DENTALAI_{name.upper()}__{key.upper()}"] = _env_value(sub)
        else:
            env[f"DENTALAI_{name.upper()}"] = _env_value(value)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ---- callback receiver ------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """Records requests; answers with queued (status, headers, delay_s) or 200."""

    server: ThreadingHTTPServer
    requests: list[ReceivedRequest] = field(default_factory=list)
    _answers: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def respond(self, *statuses: int, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        """Queue answers for the next requests (in order); afterwards 200."""
        with self._cond:
            self._answers.extend((s, headers or {}, delay_s) for s in statuses)

    def next_answer(self) -> tuple[int, dict[str, str], float]:
        with self._cond:
            return self._answers.pop(0) if self._answers else (200, {}, 0.0)

    def record(self, request: ReceivedRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 20.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} callback requests after {timeout}s")
            return list(self.requests)


def start_callback_receiver() -> CallbackReceiver:
    """A receiver on a free loopback port in a daemon thread; `.server.shutdown()` stops it."""
    holder: dict[str, CallbackReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            receiver = holder["r"]
            receiver.record(ReceivedRequest("POST", self.path, dict(self.headers.items()), body, time.time()))
            status, headers, delay = receiver.next_answer()
            if delay:
                time.sleep(delay)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            data = holder["r"].files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("content-length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = CallbackReceiver(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["r"]


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = start_callback_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# ---- processes --------------------------------------------------------------------------------


@dataclass
class Processes:
    """Starts child processes for one test and kills whatever is left at its end."""

    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(
        self,
        args: list[str],
        settings: Settings,
        wait_port: int | None = None,
        wait_line: str | None = None,
        timeout: float = 30.0,
        extra_env: dict[str, str] | None = None,
        module: str = "dentalai.cli",
    ) -> subprocess.Popen:
        """`python -m <module> <args>` with `settings` in its environment; output goes to a log
        file in the test's tmp dir (`proc.log_path`). Waits for the port or the log line."""
        env = settings_env(settings)
        env.update(extra_env or {})
        log_path = self.log_dir / f"proc{len(self.procs)}-{args[0] if args else module}.log"
        log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        try:
            if wait_port is not None:
                _wait_port_or_exit(proc, wait_port, timeout)
            if wait_line is not None:
                _wait_line(proc, log_path, wait_line, timeout)
        except Exception:
            self.stop(proc)
            raise RuntimeError(f"{args} did not start:\n{log_path.read_text()[-3000:]}") from None
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc, timeout=5)


def _wait_port_or_exit(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


def _wait_line(proc: subprocess.Popen, log_path: Path, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError("exited")
        time.sleep(0.1)
    raise TimeoutError(line)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(log_dir=tmp_path)
    yield procs
    procs.stop_all()


# ---- the whole service ------------------------------------------------------------------------


@dataclass
class Service:
    """A running service for end-to-end tests: its settings and where to reach it."""

    settings: Settings
    grpc_target: str
    rest_url: str
    token: str  # the API key of its one client
    processes: Processes


@pytest.fixture(scope="session")
def service(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """gRPC server, a real worker (models from models/), the callback dispatcher and the REST
    bridge, all as `dentalai <name>` processes with one client (`token` is its key)."""
    token = api_key("test-client")
    models = str(REPO / "models")
    auth = {"clients": [client_entry("test-client", token)]}
    settings = make_settings(redis_server.url, auth=auth, worker={"models_dir": models})
    procs = Processes(log_dir=tmp_path_factory.mktemp("service"))
    try:
        procs.start(["grpc"], settings, wait_port=settings.grpc.port)
        procs.start(["worker"], settings, wait_line="worker ready", timeout=120)
        procs.start(["dispatcher"], settings, wait_line="dispatcher started")
        procs.start(["api"], settings, wait_port=settings.api.port)
        rest_url = f"http://127.0.0.1:{settings.api.port}"
        yield Service(settings, f"127.0.0.1:{settings.grpc.port}", rest_url, token, procs)
    finally:
        procs.stop_all()
