"""`dentalai` command: `up` (everything on one machine), or one process: grpc | api | worker | dispatcher
| dicom;
`analyze` and `ui` belong to the tester tools; `key` prints a new API key and its digest.

Every process reads the same settings (`--config FILE`, DENTALAI_CONFIG, DENTALAI_* variables);
a bad value prints one message and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dentalai.api_keys import key_digest, new_key
from dentalai.config import ConfigError, Settings, load_config
from dentalai.local_secrets import demo_client_key, redis_password, webhook_secret
from dentalai.logs import setup_logging

# The client `dentalai up` configures when none is (its key in var/demo-client-key).
DEMO_CLIENT_ID = "demo"
# Process name -> "module:function(settings)".
PROCESSES = {
    "grpc": "grpc_server.server:main",
    "worker": "grpc_server.worker:main",
    "api": "rest_bridge.app:serve",
    "dispatcher": "grpc_server.dispatcher:main",
    "dicom": "dicom_node.scp:main",  # the DICOM Storage SCP (docs/dicom.md); in `up` when dicom.enabled
}
# Tools with their own argument parsing: "module:function(argv)".
TOOLS = {"analyze": "dentalai.analyze_cmd:main", "ui": "ui.app:main"}


def _load(target: str) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def _settings(path: str | None) -> Settings:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"dentalai: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        return int(_load(TOOLS[argv[0]])(argv[1:]) or 0)  # type: ignore[operator]
    parser = argparse.ArgumentParser(prog="dentalai", description=__doc__)
    parser.add_argument("--config", help="YAML file with settings (else $DENTALAI_CONFIG)")
    parser.add_argument(
        "command", choices=["up", "key", *PROCESSES, *TOOLS], help="what to run (analyze, ui: own options)"
    )
    args = parser.parse_args(argv)
    if args.command == "key":
        return print_new_key()
    settings = _settings(args.config)
    if args.command == "up":
        return up(settings, args.config)
    setup_logging(settings.log.level, args.command)
    problem = settings.auth_problem()
    if problem:
        print(f"dentalai: {problem}", file=sys.stderr)
        return 2
    if settings.auth.open:
        logging.getLogger("dentalai").warning(
            "auth.open: no API keys, every caller is the client 'dev' (development only)"
        )
    _load(PROCESSES[args.command])(settings)  # type: ignore[operator]
    return 0


def print_new_key() -> int:
    """A new API key for a client and the digest that goes into its `key_sha256`."""
    key = new_key()
    print(f"key         {key}\nkey_sha256  {key_digest(key)}")
    print("Give the key to the client (it is shown once); configure only the key_sha256.", file=sys.stderr)
    return 0


# ---- dentalai up ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _start_redis(var: Path) -> tuple[subprocess.Popen, str]:
    """A local redis-server with a generated password, its data (the AOF holds images and results)
    in a directory only this user can read."""
    data = var / "redis"
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    data.chmod(0o700)
    password, _path, _created = redis_password(var)
    port = _free_port()
    # appendonly: pending callbacks and queued jobs survive a restart of `dentalai up`. The
    # password goes in on stdin (a config file read from "-"), not on the command line.
    proc = subprocess.Popen(
        ["redis-server", "-", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--save", ""],
        stdin=subprocess.PIPE,
        stdout=open(var / "redis.log", "ab"),  # noqa: SIM115 (lives as long as the process)
        stderr=subprocess.STDOUT,
        umask=0o077,
    )
    assert proc.stdin is not None
    proc.stdin.write(f'requirepass "{password}"\n'.encode())
    proc.stdin.close()
    if not _wait_port("127.0.0.1", port, 10):
        proc.terminate()
        raise SystemExit(f"dentalai: redis-server did not start (see {var / 'redis.log'})")
    return proc, f"redis://:{password}@127.0.0.1:{port}/0"


def up(settings: Settings, config_path: str | None) -> int:
    """Start redis (when no URL is set), grpc, api, worker, dispatcher and UI; stop all on Ctrl-C/SIGTERM."""
    children: list[tuple[str, subprocess.Popen]] = []
    env = dict(os.environ)
    if config_path:
        env["DENTALAI_CONFIG"] = config_path
    if not settings.redis_url and not settings.redis.sentinels:
        try:
            proc, url = _start_redis(Path("var"))
        except FileNotFoundError:
            print("dentalai: redis-server not found; install it or set DENTALAI_REDIS_URL", file=sys.stderr)
            return 2
        children.append(("redis", proc))
        env["DENTALAI_REDIS_URL"] = url
        where_port = url.rsplit("@", 1)[1]
        print(f"redis       {where_port} (data in var/redis, password in var/redis-password)", flush=True)
    else:
        where = settings.redis_url.rsplit("@", 1)[-1] or "sentinels " + ", ".join(settings.redis.sentinels)
        print("redis       " + where, flush=True)
    if not settings.callbacks.signing_secrets:
        # Signed by default: one secret per installation, made on the first start.
        secret, path, created = webhook_secret(Path("var"))
        env["DENTALAI_CALLBACKS__SIGNING_SECRETS"] = json.dumps([secret])
        made = "created now" if created else "kept from an earlier start"
        print(f"callbacks   signed with the secret in {path.resolve()} ({made})", flush=True)
    if not settings.auth.clients and not settings.auth.open:
        # Secure by default: a key for the demo client, made on the first start; the UI uses it.
        key, path, created = demo_client_key(Path("var"))
        env["DENTALAI_AUTH__CLIENTS"] = json.dumps([{"id": DEMO_CLIENT_ID, "key_sha256": [key_digest(key)]}])
        env.setdefault("DENTALAI_TOKEN", key)
        made = "created now" if created else "kept from an earlier start"
        print(f"clients     '{DEMO_CLIENT_ID}', API key in {path.resolve()} ({made})", flush=True)
    elif settings.auth.open:
        print("clients     NONE: auth.open, every caller is 'dev' (development only)", flush=True)
    else:
        print("clients     " + ", ".join(c.id for c in settings.auth.clients), flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = {
        "grpc": f"grpc        {settings.grpc.host}:{settings.grpc.port}",
        "api": f"api         http://{settings.api.host}:{settings.api.port} (docs at /docs)",
        "worker": "worker      (no port) models from " + settings.worker.models_dir,
        "dispatcher": "dispatcher  (no port) delivers callbacks",
        "dicom": "dicom       " + f"{settings.dicom.ae_title}@{settings.dicom.host}:{settings.dicom.port}",
        "ui": f"ui          http://{settings.ui.host}:{settings.ui.port}/ (tester UI, {settings.ui.backend})",
    }

    def launch(name: str) -> None:
        children.append((name, subprocess.Popen([sys.executable, "-m", "dentalai.cli", name], env=env)))
        print(where[name], flush=True)

    try:
        for name in ("grpc", "worker", "dispatcher", "api"):
            module = PROCESSES[name].partition(":")[0]
            if not _importable(module):
                print(f"{name:<11} NOT STARTED: module {module} is missing from this install", flush=True)
                continue
            launch(name)
        if settings.dicom.enabled:
            launch("dicom")
        else:
            print("dicom       not started (dicom.enabled is false)", flush=True)
        if not settings.ui.enabled:
            print("ui          not started (ui.enabled is false)", flush=True)
        elif not _importable("gradio"):
            print('ui          NOT STARTED: gradio is missing (pip install -e ".[ui]")', flush=True)
        else:
            launch("ui")
        started = {name for name, _ in children}
        if "grpc" in started:
            _wait_port(settings.grpc.host, settings.grpc.port, 30)
        if "api" in started:
            _wait_port(settings.api.host, settings.api.port, 30)
        if "dicom" in started:
            _wait_port(settings.dicom.host, settings.dicom.port, 30)
        if "ui" in started:
            _wait_port(settings.ui.host, settings.ui.port, 60)
        print("all started; Ctrl-C stops them", flush=True)
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    message = f"dentalai: {name} exited with {proc.returncode}; stopping the rest"
                    print(message, file=sys.stderr)
                    stopping = True
            time.sleep(0.3)
    finally:
        # The service processes first (the worker finishes its task), redis last.
        services = [proc for name, proc in children if name != "redis"]
        redis = [proc for name, proc in children if name == "redis"]
        for group in (services, redis):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
