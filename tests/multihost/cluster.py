"""Three hosts A, B, C: a Consul server on each, workers on B and C, the gateway on A."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.multihost.hosts import (
    CONSUL_PORT,
    PYTHON,
    Gateway,
    ns_http,
    ns_json,
    start_consul_server,
    start_gateway,
    start_worker,
)
from tests.multihost.netns import Host, Network
from tests.support.processes import REPO_ROOT, ManagedProcess
from tests.support.waiting import wait_for

HOST_INDEX = {"a": 11, "b": 12, "c": 13}
WORKER_HOSTS = ("b", "c")
# The first Raft leader runs on a worker host, and not on the gateway's: cutting B's link then
# also takes the leader away, the case where a leader-only long poll from A would hang.
FIRST_LEADER = "b"


@dataclass
class MultiHostCluster:
    """Handles on everything the test started, for measuring and for teardown."""

    net: Network
    workdir: Path
    consul: dict[str, ManagedProcess] = field(default_factory=dict)
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    gateway: Gateway | None = None

    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    # ---- Consul --------------------------------------------------------------------
    def leader(self, via: str) -> str | None:
        """The host name of the Raft leader as host `via`'s agent reports it, None when none."""
        try:
            answer = ns_json(self.host(via), f"http://{self.host(via).address}:{CONSUL_PORT}/v1/status/leader")
        except (RuntimeError, ValueError):
            return None
        address = (answer or "").rsplit(":", 1)[0]
        return next((n for n, h in self.net.hosts.items() if h.address == address), None)

    def peers(self, via: str) -> int:
        host = self.host(via)
        return len(ns_json(host, f"http://{host.address}:{CONSUL_PORT}/v1/status/peers"))

    def voters(self, via: str) -> int:
        """Raft voters as host `via` sees them; a server that rejoins is a non-voter for a while
        (autopilot's server_stabilization_time, 10 s), and only voters count for quorum."""
        host = self.host(via)
        config = ns_json(host, f"http://{host.address}:{CONSUL_PORT}/v1/operator/raft/configuration")
        return sum(1 for server in config["Servers"] if server["Voter"])

    def passing_addresses(self, via: str = "a") -> dict[str, str]:
        """Service ID -> address of the passing ner-worker instances, as the cluster reports them."""
        host = self.host(via)
        entries = ns_json(host, f"http://{host.address}:{CONSUL_PORT}/v1/health/service/ner-worker?passing=1")
        return {e["Service"]["ID"]: e["Service"]["Address"] for e in entries}

    def start_consul(self, name: str, bootstrap: bool = False) -> ManagedProcess:
        peers = [h for n, h in self.net.hosts.items() if n != name]
        self.consul[name] = start_consul_server(self.host(name), peers, self.workdir, bootstrap)
        return self.consul[name]

    def kill_consul(self, name: str) -> None:
        """SIGKILL, as a crash: no leave, no graceful handover."""
        self.consul[name].signal(signal.SIGKILL)
        self.consul[name].proc.wait(timeout=10)

    def logs(self) -> str:
        procs = [*self.consul.values(), *self.workers.values()]
        if self.gateway:
            procs += [self.gateway.renderer, self.gateway.nginx]
        return "\n".join(p.log_tail(25) for p in procs)

    # ---- gateway -------------------------------------------------------------------
    def gateway_serves(self) -> bool:
        assert self.gateway is not None
        status, _ = ns_http(self.host("a"), f"{self.gateway.url}/v1/ner", data=json.dumps({"text": "张三在北京工作。"}))
        return status == 200

    def upstream_hosts(self) -> set[str]:
        """Host names whose addresses are in the gateway's live upstream."""
        assert self.gateway is not None
        addresses = {server.rsplit(":", 1)[0] for server in self.gateway.upstream_servers()}
        return {n for n, h in self.net.hosts.items() if h.address in addresses}

    def request_loop(self, name: str, max_seconds: float) -> "LoopRun":
        assert self.gateway is not None
        return LoopRun.start(self.host("a"), f"{self.gateway.url}/v1/ner", self.workdir / name, max_seconds)

    def stop(self) -> None:
        """Workers first (they drain and deregister), then the gateway, then Consul; then the network."""
        for worker in self.workers.values():
            worker.signal(signal.SIGTERM)
        for worker in self.workers.values():
            worker.stop(timeout=20)
        if self.gateway:
            self.gateway.stop()
        for agent in self.consul.values():
            agent.stop(timeout=10)
        self.net.destroy()


def start_cluster(workdir: Path, record) -> Iterator[MultiHostCluster]:
    """Build the three hosts and everything on them; yields the cluster, tears it all down after."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    net = Network()
    cluster = MultiHostCluster(net=net, workdir=workdir)
    try:
        net.create_bridge()
        for name, index in HOST_INDEX.items():
            net.add_host(name, index)
        started = time.monotonic()
        for name in HOST_INDEX:
            cluster.start_consul(name, bootstrap=name == FIRST_LEADER)
        took = wait_for(
            lambda: cluster.leader("a") == FIRST_LEADER and all(cluster.peers(n) == 3 for n in HOST_INDEX),
            60,
            "3 Consul servers with a leader",
            interval=0.2,
            on_timeout=cluster.logs,
        )
        record("multihost_consul_cluster_formed_s", took)
        for name in WORKER_HOSTS:
            cluster.workers[name] = start_worker(cluster.host(name), workdir)
        cluster.gateway = start_gateway(cluster.host("a"), workdir / "gateway")
        wait_for(
            lambda: len(cluster.passing_addresses()) == len(WORKER_HOSTS),
            240,
            "workers on B and C passing",
            interval=0.5,
            on_timeout=cluster.logs,
        )
        wait_for(
            lambda: cluster.upstream_hosts() == set(WORKER_HOSTS) and cluster.gateway_serves(),
            60,
            "the gateway routing to B and C",
            interval=0.3,
            on_timeout=cluster.logs,
        )
        # Joined servers vote only after autopilot promotes them (10 s); before that, losing
        # one server loses the quorum.
        wait_for(lambda: cluster.voters("a") == 3, 60, "3 Raft voters", interval=0.5, on_timeout=cluster.logs)
        record("multihost_cluster_serving_s", time.monotonic() - started)
        yield cluster
    finally:
        cluster.stop()


@dataclass
class LoopRun:
    """tests/multihost/request_loop.py running inside a host namespace."""

    process: ManagedProcess
    out: Path
    stop_file: Path

    @classmethod
    def start(cls, host: Host, url: str, base: Path, max_seconds: float) -> "LoopRun":
        out, stop_file = base.with_suffix(".jsonl"), base.with_suffix(".stop")
        out.unlink(missing_ok=True)
        stop_file.unlink(missing_ok=True)
        argv = host.argv(
            [
                str(PYTHON),
                "-m",
                "tests.multihost.request_loop",
                url,
                str(out),
                "--max-seconds",
                str(max_seconds),
                "--stop-file",
                str(stop_file),
            ]
        )
        process = ManagedProcess(name=base.name, argv=argv, log_path=base.with_suffix(".log"), cwd=REPO_ROOT).start()
        run = cls(process=process, out=out, stop_file=stop_file)
        wait_for(lambda: len(run.outcomes()) >= 3, 30, "the request loop's first answers", on_timeout=process.log_tail)
        return run

    def outcomes(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self) -> list[dict]:
        self.stop_file.touch()
        try:
            self.process.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.stop()
        return self.outcomes()


def failed(outcomes: list[dict]) -> list[dict]:
    """Requests the retrying client gave up on."""
    return [o for o in outcomes if o["status"] is None or o["status"] >= 500]


def retried(outcomes: list[dict]) -> list[dict]:
    """Requests whose first attempt failed (the client then retried)."""
    return [o for o in outcomes if o["first"] is None or o["first"] >= 500]
