"""A real Ray cluster on this machine: a head and worker nodes, each its own ``ray start``.

Every node gets an address of its own on the loopback range (head 127.0.0.2, workers
127.0.0.3, ...: Ray rewrites 127.0.0.1 to the machine's outward address, any other
loopback address it keeps), so the cluster talks over loopback only and a verdict's
``node_ip`` tells the nodes apart. Each node is a ``ray start --block`` in a process
group of its own, and every process of the cluster carries a marker in its environment
(``AINA_RAY_CLUSTER``): :meth:`LocalRayCluster.stop` ends exactly those processes, by id,
never other Ray instances on the machine (``ray stop`` would end them all).

Used by tests/changer/executors and benchmarks/bench_executors.py:

    with LocalRayCluster(nodes=2) as cluster:
        RayExecutor(cluster.address) ...
        cluster.kill_node("127.0.0.3")
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _procs() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _read(pid: int, what: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{what}", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


class LocalRayCluster:
    def __init__(
        self,
        nodes: int = 2,
        cpus_per_node: int = 1,
        object_store_bytes: int = 200_000_000,
        pythonpath: list[str] | None = None,
        env: dict | None = None,
    ):
        self.nodes = nodes
        self.cpus = cpus_per_node
        self.object_store_bytes = object_store_bytes
        self.token = uuid.uuid4().hex
        # short: Ray's unix sockets live under it, and a socket path has a 107-byte limit
        self.temp = Path(tempfile.mkdtemp(prefix="aray-", dir="/tmp"))
        os.chmod(self.temp, 0o755)  # the sandbox's uid passes through to the trees unpacked here
        self.port = free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.ips = [f"127.0.0.{2 + i}" for i in range(nodes)]
        self.env = dict(
            os.environ,
            RAY_DISABLE_USAGE_STATS="1",
            AINA_RAY_CLUSTER=self.token,
            AINA_RAY_NODE_DIR=str(self.temp / "nodes"),  # removed with the cluster
            # a dead node is noticed within seconds rather than half a minute
            RAY_health_check_period_ms="1000",
            RAY_health_check_failure_threshold="3",
            RAY_health_check_timeout_ms="1000",
            **(env or {}),
        )
        self.env.pop("RAY_ADDRESS", None)
        if pythonpath:
            self.env["PYTHONPATH"] = os.pathsep.join(pythonpath + [self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.starters: dict[str, subprocess.Popen] = {}

    def _start(self, ip: str, head: bool) -> None:
        common = [
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_bytes}",
            "--disable-usage-stats",
            f"--node-ip-address={ip}",
            "--block",
        ]
        if head:
            args = [
                RAY,
                "start",
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--temp-dir={self.temp}",
            ] + common
        else:
            args = [RAY, "start", f"--address={self.address}"] + common
        with open(self.temp / f"start-{ip}.log", "wb") as log:  # the child keeps its own descriptor
            self.starters[ip] = subprocess.Popen(
                args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start(self, timeout: float = 240) -> LocalRayCluster:
        import ray

        self._start(self.ips[0], head=True)
        for ip in self.ips[1:]:
            self._start(ip, head=False)
        deadline = time.monotonic() + timeout
        try:
            while True:
                dead = [ip for ip, p in self.starters.items() if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"ray start for {dead[0]} exited: {self.log(dead[0])[-2000:]}")
                try:
                    if not ray.is_initialized():
                        # ray.init waits minutes for a head that is not listening yet
                        socket.create_connection(("127.0.0.2", self.port), timeout=2).close()
                        ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
                    alive = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
                    if alive >= set(self.ips):
                        break
                except (OSError, RuntimeError):  # ConnectionError is an OSError
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the cluster did not come up in {timeout} s: "
                        + " | ".join(self.log(ip)[-500:] for ip in self.ips)
                    )
                time.sleep(1)
        except BaseException:
            self.stop()
            raise
        finally:
            if ray.is_initialized():
                ray.shutdown()
        return self

    def log(self, ip: str) -> str:
        return (self.temp / f"start-{ip}.log").read_text(errors="replace")

    def processes(self) -> list[int]:
        """This cluster's processes: everything whose environment carries our marker, or that
        runs in the session of one of our ``ray start`` processes (each was started in a
        session of its own). Both, because Ray's agents rename themselves (setproctitle),
        which overwrites what /proc shows of their environment: a DashboardAgent and a
        RuntimeEnvAgent were seen to outlive a cluster that was found by the marker alone."""
        marker = f"AINA_RAY_CLUSTER={self.token}".encode()
        sessions = {p.pid for p in self.starters.values()}
        return [
            pid
            for pid in _procs()
            if pid != os.getpid() and (_sid(pid) in sessions or marker in _read(pid, "environ").split(b"\0"))
        ]

    def raylet(self, ip: str) -> int | None:
        for pid in self.processes():
            argv = _read(pid, "cmdline").split(b"\0")
            if argv and argv[0].endswith(b"raylet") and f"--node_ip_address={ip}".encode() in argv:
                return pid
        return None

    def kill_node(self, ip: str) -> list[int]:
        """SIGKILL the node's raylet and every process it started (its workers): the node
        vanishes as a machine that lost power would."""
        raylet = self.raylet(ip)
        if raylet is None:
            raise RuntimeError(f"no raylet for {ip}")
        victims = [raylet] + [pid for pid in self.processes() if _ppid(pid) == raylet]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return victims

    def stop(self) -> None:
        for _ in range(3):
            left = self.processes() + [p.pid for p in self.starters.values() if p.poll() is None]
            if not left:
                break
            for pid in set(left):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for p in self.starters.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _sid(pid: int) -> int | None:
    stat = _read(pid, "stat").decode(errors="replace")
    try:
        return int(stat.rsplit(")", 1)[1].split()[3])
    except (IndexError, ValueError):
        return None


def _ppid(pid: int) -> int | None:
    stat = _read(pid, "stat").decode(errors="replace")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return None
