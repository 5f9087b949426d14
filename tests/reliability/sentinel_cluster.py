"""A Redis primary, its replicas and Sentinels as local processes, for failover tests and
bench/failover_soak.py.

    cluster = SentinelCluster(tmp_path, password=...).start()
    cluster.sentinel_addresses     # ["127.0.0.1:PORT", ...] for settings.redis.sentinels
    old = cluster.kill_master()    # SIGKILL the primary; the Sentinels promote a replica
    cluster.wait_new_master(old)   # (host, port) of the new primary
    cluster.restart(old)           # back as a replica of the new primary
    cluster.stop()

Every process is `redis-server` (the Sentinels with `--sentinel`, as `redis-sentinel` would be) on
a free loopback port with its own directory. Sentinels decide quickly (down-after 1 s) so that a
test sees a whole failover within seconds; everything else is Redis's default behaviour.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import REDIS_SERVER, free_port, wait_port

MASTER_NAME = "dentalai"


@dataclass
class Node:
    """One redis-server process: a data node or a Sentinel."""

    name: str
    port: int
    directory: Path
    sentinel: bool = False
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=10)


@dataclass
class SentinelCluster:
    directory: Path
    replicas: int = 2
    sentinels: int = 3
    password: str = ""
    down_after_ms: int = 1000
    failover_timeout_ms: int = 6000
    # min-replicas-to-write of every data node (it applies to whichever is primary); 0 = off.
    min_replicas_to_write: int = 0
    data: list[Node] = field(default_factory=list)
    watchers: list[Node] = field(default_factory=list)

    # ---- start and stop -----------------------------------------------------------------------

    def start(self) -> SentinelCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        for i in range(1 + self.replicas):
            node = Node(f"redis-{i}", free_port(), self.directory / f"redis-{i}")
            self.data.append(node)
        primary = self.data[0]
        self._start_data(primary, None)
        for node in self.data[1:]:
            self._start_data(node, primary)
        self._wait_replicas_linked(primary, self.replicas)
        for i in range(self.sentinels):
            node = Node(f"sentinel-{i}", free_port(), self.directory / f"sentinel-{i}", sentinel=True)
            self.watchers.append(node)
            self._start_sentinel(node, primary)
        self._wait_sentinels_agree(primary)
        return self

    def stop(self) -> None:
        for node in self.watchers + self.data:
            if node.alive():
                node.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                node.signal(signal.SIGTERM)

    def _start_data(self, node: Node, primary: Node | None) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {node.port}", "bind 127.0.0.1", f'dir "{node.directory}"', 'save ""',
            "appendonly no", "protected-mode no",
            "repl-diskless-sync-delay 0",  # a (re)started replica syncs at once, not after 5 s
        ]
        if self.password:
            lines += [f'requirepass "{self.password}"', f'masterauth "{self.password}"']
        if self.min_replicas_to_write:
            lines += [f"min-replicas-to-write {self.min_replicas_to_write}", "min-replicas-max-lag 10"]
        if primary is not None:
            lines.append(f"replicaof 127.0.0.1 {primary.port}")
        self._launch(node, lines, sentinel=False)

    def _start_sentinel(self, node: Node, primary: Node) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {node.port}", "bind 127.0.0.1", f'dir "{node.directory}"', "protected-mode no",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            # requirepass: clients and the other Sentinels log in with it (as in deploy/k8s).
            lines += [f'requirepass "{self.password}"', f"sentinel auth-pass {MASTER_NAME} {self.password}"]
        self._launch(node, lines, sentinel=True)

    def _launch(self, node: Node, lines: list[str], sentinel: bool) -> None:
        # A config file, not arguments: the password stays off the command line, and a Sentinel
        # needs a writable file to record what it learns.
        conf = node.directory / ("sentinel.conf" if sentinel else "redis.conf")
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        args = [REDIS_SERVER, str(conf)] + (["--sentinel"] if sentinel else [])
        log = open(node.directory / "log.txt", "ab")  # noqa: SIM115 (lives as long as the process)
        node.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_port(node.port, timeout=10)

    # ---- clients and state --------------------------------------------------------------------

    @property
    def sentinel_addresses(self) -> list[str]:
        return [n.address for n in self.watchers]

    def client(self, node: Node, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            port=node.port, password=self.password or None, socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )  # fmt: skip

    def master_address(self) -> tuple[str, int] | None:
        """The primary most live Sentinels name now (None while they do not agree on one)."""
        seen: dict[tuple[str, int], int] = {}
        for node in self.watchers:
            if not node.alive():
                continue
            try:
                got = self.client(node, 0.5).sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if got:
                address = (got[0].decode() if isinstance(got[0], bytes) else got[0], int(got[1]))
                seen[address] = seen.get(address, 0) + 1
        live = sum(n.alive() for n in self.watchers)
        best = max(seen.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] * 2 > live else None

    def master(self) -> Node:
        address = self.master_address()
        for node in self.data:
            if address == ("127.0.0.1", node.port):
                return node
        raise LookupError(f"no data node is the master the Sentinels name ({address})")

    def node_role(self, node: Node) -> str:
        try:
            return str(self.client(node, 0.5).info("replication")["role"])
        except redis.RedisError:
            return "down"

    # ---- faults -------------------------------------------------------------------------------

    def kill_master(self) -> Node:
        """SIGKILL the current primary; returns its node."""
        node = self.master()
        node.signal(signal.SIGKILL)
        return node

    def wait_new_master(self, old: Node, timeout: float = 30.0) -> Node:
        """Wait until the Sentinels name another node and it answers as a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address and address != ("127.0.0.1", old.port):
                node = next(n for n in self.data if ("127.0.0.1", n.port) == address)
                if self.node_role(node) == "master":
                    return node
            time.sleep(0.05)
        raise TimeoutError(f"no new primary within {timeout}s")

    def restart(self, node: Node) -> None:
        """Start a killed node again: a data node as a replica of the current primary (as the
        deploy/k8s init script does, so it never comes back as a second primary)."""
        if node.sentinel:
            self._relaunch_sentinel(node)
            return
        primary = self.master()
        self._start_data(node, primary)

    def _relaunch_sentinel(self, node: Node) -> None:
        # Its config file holds what it learned (the current master, the other Sentinels).
        args = [REDIS_SERVER, str(node.directory / "sentinel.conf"), "--sentinel"]
        log = open(node.directory / "log.txt", "ab")  # noqa: SIM115
        node.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_port(node.port, timeout=10)

    def replica_nodes(self) -> list[Node]:
        primary = self.master()
        return [n for n in self.data if n is not primary and n.alive()]

    def _online_replicas(self, primary: Node) -> int:
        """Replicas done with their initial sync (connected_slaves also counts those still in it)."""
        info = self.client(primary).info("replication")
        return sum(
            1 for key, value in info.items()
            if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
        )  # fmt: skip

    def _wait_replicas_linked(self, primary: Node, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._online_replicas(primary) >= count:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{count} replicas did not link to {primary.name}")

    def _wait_sentinels_agree(self, primary: Node, timeout: float = 20.0) -> None:
        """Every Sentinel knows the primary, the replicas and the other Sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ready = all(
                    (state := self.client(n).sentinel_master(MASTER_NAME))["num-slaves"] >= self.replicas
                    and state["num-other-sentinels"] >= self.sentinels - 1
                    for n in self.watchers
                )
                if ready:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the Sentinels did not find each other and the replicas")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """A primary named by the Sentinels with every live replica linked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                primary = self.master()
                if self._online_replicas(primary) >= len(self.replica_nodes()):
                    return
            except (LookupError, redis.RedisError):
                pass
            time.sleep(0.1)
        raise TimeoutError("the cluster did not settle")
