"""A real multi-node Ray cluster on this machine, for tests: one `ray start --head` and more `ray start --address`
nodes, each its own raylet with its own resources, on loopback addresses only, with token authentication on.

Why these choices:
- Ray rewrites a node address of 127.0.0.1 to the machine's outward address, so each node gets its own address
  elsewhere in 127.0.0.0/8 (127.0.0.2 for the head, 127.0.0.3, ...): still loopback, and Ray's node list tells them apart.
- Other Ray instances may run on the same machine, so nothing here uses `ray stop` (which stops every Ray process
  of the machine) or Ray's default ports: each node runs `ray start --block` in its own session with free ports,
  and stopping signals only those processes and their descendants.
- RAY_ADDRESS is set for every node so that Ray's own components never have to guess among several local clusters.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HEAD_IP = "127.0.0.2"
DASHBOARD_HOST = "127.0.0.1"
OBJECT_STORE_BYTES = 100_000_000
NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)
HEAD_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port")


def free_ports(count: int) -> list[int]:
    """Ports free on loopback right now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def dashboard_missing_reason() -> str | None:
    """Why the Jobs API cannot run here, or None: the dashboard and job server come with `ray[default]`."""
    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError as error:
        return f"the Ray Jobs API needs the dashboard packages of ray[default] ({error}); pip install 'ray[default]'"
    return None


@dataclass
class RayNode:
    address: str
    process: subprocess.Popen
    log_path: Path


class LocalRayCluster:
    """Start nodes with `add_head` then `add_node`; always `stop()` (a finaliser), whatever happened."""

    def __init__(self, root: Path, start_timeout_s: float = 90.0) -> None:
        self.root = root
        self.start_timeout_s = start_timeout_s
        self.nodes: list[RayNode] = []
        self.token_path = root / "auth_token"
        self.token_path.write_text(secrets.token_hex(32), encoding="utf-8")
        self.token_path.chmod(0o600)
        self.gcs_address = ""
        self.dashboard_url = ""

    def client_env(self, authenticated: bool = True) -> dict[str, str]:
        """The environment of a client (and of every node): token mode with this cluster's token file, or neither."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if authenticated:
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        return env

    def _node_env(self) -> dict[str, str]:
        env = self.client_env()
        env["RAY_ADDRESS"] = self.gcs_address
        env["GLOO_SOCKET_IFNAME"] = "lo"  # torch.distributed between workers over loopback too
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"  # stop at once: nothing of a finished test needs draining
        return env

    def ray(self, *args: str, authenticated: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run the `ray` command line of this Python environment."""
        return subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", *args],
            env=self.client_env(authenticated),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def add_head(self, num_cpus: int, resources: dict[str, float]) -> None:
        ports = free_ports(len(HEAD_PORT_FLAGS) + len(NODE_PORT_FLAGS))
        head_ports = dict(zip(HEAD_PORT_FLAGS, ports))
        self.gcs_address = f"{HEAD_IP}:{head_ports['--port']}"
        self.dashboard_url = f"http://{DASHBOARD_HOST}:{head_ports['--dashboard-port']}"
        flags = ["--head", f"--dashboard-host={DASHBOARD_HOST}", f"--temp-dir={self.root / 'ray-0'}"]
        flags += [f"{flag}={port}" for flag, port in head_ports.items()]
        self._start_node(HEAD_IP, flags, ports[len(HEAD_PORT_FLAGS) :], num_cpus, resources)
        self._wait_until(
            lambda: self.ray("job", "list", "--address", self.dashboard_url).returncode == 0, "the job server"
        )

    def add_node(self, num_cpus: int, resources: dict[str, float]) -> None:
        """Another node on its own loopback address, with its own temp dir (logs, sockets) like a separate machine."""
        node_ip = f"127.0.0.{len(self.nodes) + 2}"
        flags = [f"--address={self.gcs_address}", f"--temp-dir={self.root / f'ray-{len(self.nodes)}'}"]
        self._start_node(node_ip, flags, free_ports(len(NODE_PORT_FLAGS)), num_cpus, resources)
        self._wait_until(lambda: node_ip in self.alive_node_ips(), f"node {node_ip} to join")

    def alive_node_ips(self) -> set[str]:
        try:
            return {node["node_ip"] for node in self.state("nodes") if node["state"] == "ALIVE"}
        except RuntimeError:
            return set()

    def state(self, *args: str) -> list[dict]:
        """Rows of Ray's state API (`ray list ... --format json`), e.g. state("nodes") or state("actors", "--filter", ...)."""
        result = self.ray("list", *args, "--detail", "--format", "json", f"--address={self.gcs_address}")
        start = result.stdout.find("[")
        if result.returncode != 0 or start < 0:  # a node still starting can answer with no table yet
            raise RuntimeError(f"ray list {' '.join(args)} failed: {result.stdout[-500:]} {result.stderr[-2000:]}")
        return json.loads(result.stdout[start:])

    def _start_node(
        self, node_ip: str, flags: list[str], ports: list[int], num_cpus: int, resources: dict[str, float]
    ) -> None:
        log_path = self.root / f"node-{len(self.nodes)}.log"
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--block", f"--node-ip-address={node_ip}",
            f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources)}", f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats", *flags,
            *(f"{flag}={port}" for flag, port in zip(NODE_PORT_FLAGS, ports)),
        ]  # fmt: skip
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, env=self._node_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.nodes.append(RayNode(address=node_ip, process=process, log_path=log_path))

    def _wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise RuntimeError(
                        f"ray start for {node.address} exited early:\n{node.log_path.read_text(encoding='utf-8')[-3000:]}"
                    )
            if ready():
                return
            time.sleep(1.0)
        raise TimeoutError(f"waited {self.start_timeout_s:g}s for {what}")

    def stop(self, grace_s: float = 45.0) -> None:
        """SIGTERM each `ray start --block` (it drains and stops its node), then SIGKILL whatever of ours is left:
        the processes that descended from those we started, and any left in their sessions. Nothing else is touched:
        a process is only killed while its start time is the one recorded when it was found to be ours."""
        started = {node.process.pid for node in self.nodes}
        table = process_table()
        ours = {pid: table[pid] for pid in descendants(started, table) - started}
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        time.sleep(1.0)
        table = process_table()
        ours.update({pid: info for pid, info in table.items() if info[1] in started})  # left in our sessions
        for pid, info in ours.items():
            if table.get(pid, (None, None, None))[2] == info[2]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.kill()
            node.process.wait(timeout=10)
        deadline = time.monotonic() + 10.0
        while self.leftover_processes() and time.monotonic() < deadline:
            time.sleep(0.2)

    def leftover_processes(self) -> set[int]:
        """Processes still in the sessions this cluster started (none after a clean stop)."""
        sessions = {node.process.pid for node in self.nodes}
        return {pid for pid, (_, session, _) in process_table().items() if session in sessions}


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, session id, start time) of every live process, from /proc (Ray clusters run on Linux);
    exited processes that wait to be reaped (zombies) are not listed."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, int, int]]) -> set[int]:
    """The given processes and all processes below them in `table` (from process_table)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, frontier = set(roots), list(roots)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found
