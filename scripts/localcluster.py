"""The whole cluster on one machine: Consul, N workers, the renderer and nginx under one supervisord.

Every process is a program of the run directory's supervisord (scripts/localmode/), which
restarts whatever dies. This module holds the operations `make up|down|scale|status` and the
integration tests run: `up` starts only what is missing and waits until the gateway serves,
`scale` adds or removes worker programs without touching the others, `down` stops everything and
checks that nothing of the cluster is left.

Secured mode (`NER_SECURE=1`, `make up SECURE=1`; docs/SECURITY.md) runs Consul as a persistent
single server with ACLs (default deny) and gossip encryption, hands every process the token of
its role, and rate-limits the gateway more tightly. The mode is decided when Consul starts and
recorded in RUN_DIR/mode, so `scale`, `status` and `down` follow a running cluster's mode.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from scripts.localmode import gateway, gatewaychecks, monitoring
from scripts.localmode.config import REPO_ROOT, SERVICE_NAME, ClusterConfig, load_config, on_free_ports
from scripts.localmode.consul import consul_ports
from scripts.localmode.mode import RunMode
from scripts.localmode.procs import child_pids, pid_alive
from scripts.localmode.programs import starts_dir
from scripts.localmode.starts import ProgramStarts
from scripts.localmode.supervisor import ProgramState, Supervisor
from scripts.localmode.teardown import sweep
from scripts.localmode.waiting import wait_for
from scripts.localmode.workers import current_port, index_of, is_worker, ports_in
from scripts.ports import port_is_free
from scripts.secured.secretfiles import SecretStore

__all__ = [
    "REPO_ROOT",
    "SERVICE_NAME",
    "ClusterConfig",
    "LocalCluster",
    "Proc",
    "child_pids",
    "load_config",
    "on_free_ports",
    "pid_alive",
    "port_is_free",
    "wait_for",
]


@dataclass
class Proc:
    """One running program of the cluster, as the supervisor reports it."""

    name: str
    pid: int
    port: int = 0
    log: str = ""

    def alive(self) -> bool:
        return pid_alive(self.pid)


@dataclass
class LocalCluster(ProgramStarts):
    """Start, inspect, scale and stop the local cluster of config.run_dir."""

    config: ClusterConfig
    say: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))

    supervisor: Supervisor = field(init=False)
    mode: RunMode = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.config.run_dir, self.config.python)
        self.mode = RunMode(self.config.run_dir, self.config.secure)

    # ---- secured mode (scripts/localmode/mode.py) ---------------------------------------------
    @property
    def secure(self) -> bool:
        """The mode of the Consul this run directory started last; config.secure before any start."""
        return self.mode.secure

    def secrets(self) -> SecretStore:
        return self.mode.secrets()

    def token(self, role: str) -> str | None:
        return self.mode.token(role)

    def token_file(self, role: str) -> Path | None:
        return self.mode.token_file(role)

    def token_env(self, role: str) -> dict[str, str]:
        return self.mode.token_env(role)

    @property
    def consul_url(self) -> str:
        """Consul's API as this cluster's clients reach it: HTTPS in secure mode."""
        return self.mode.consul_url(self.config.consul_http_port)

    # ---- what runs ------------------------------------------------------------------------
    def port_of(self, name: str) -> int:
        if name == "consul":
            return self.config.consul_http_port
        if name == "nginx":
            return self.config.gateway_port
        if name in monitoring.PROGRAMS:
            return monitoring.port_of(self.config, name)
        return current_port(self.config.run_dir, name) if is_worker(name) else 0

    def _proc(self, state: ProgramState) -> Proc:
        return Proc(name=state.name, pid=state.pid, port=self.port_of(state.name), log=state.log)

    def live(self) -> dict[str, Proc]:
        """Programs that run now, by name."""
        return {
            name: self._proc(state)
            for name, state in self.supervisor.states().items()
            if state.pid > 0 and state.state in ("STARTING", "RUNNING") and pid_alive(state.pid)
        }

    def workers(self) -> dict[str, Proc]:
        """Running workers, by name (worker-1, worker-2, ...)."""
        return {
            name: proc for name, proc in sorted(self.live().items(), key=lambda kv: _order(kv[0])) if is_worker(name)
        }

    def configured_workers(self) -> list[str]:
        """Worker programs the supervisor keeps, running or not."""
        return sorted((name for name in self.supervisor.configured() if is_worker(name)), key=index_of)

    # ---- cluster operations ------------------------------------------------------------
    def passing(self) -> list[dict]:
        """Healthy ner-worker instances as Consul reports them."""
        response = requests.get(
            f"{self.consul_url}/v1/health/service/{SERVICE_NAME}",
            params={"passing": "1"},
            headers=self.mode.consul_headers(),
            timeout=5,
            verify=self.mode.consul_verify(),
        )
        response.raise_for_status()
        return [entry["Service"] for entry in response.json()]

    def _start_missing(self, count: int) -> None:
        for name in self.configured_workers():
            state = self.supervisor.state(name)
            if state is None or state.state not in ("STARTING", "RUNNING", "BACKOFF", "STOPPING"):
                self.supervisor.activate(name)
        for _ in range(count - len(self.configured_workers())):
            proc = self.start_worker()
            self.say(f"{proc.name}: starting on 127.0.0.1:{proc.port}")

    def wait_workers_passing(self, count: int, timeout: float = 60) -> float:
        """Wait until count workers run and each one's port passes in Consul."""

        def settled() -> bool:
            ports = {proc.port for proc in self.workers().values()}
            passing = self.passing()
            return len(ports) == count and len(passing) == count and {s["Port"] for s in passing} == ports

        try:
            return wait_for(settled, timeout, f"{count} passing workers")
        except TimeoutError as error:
            tails = "\n".join(f"--- {name}\n{self._log_tail(name, 15)}" for name in self.configured_workers())
            raise TimeoutError(f"{error}\n{tails}") from None

    def wait_gateway_serving(self, timeout: float = 30) -> float:
        """Wait until a real NER request succeeds through the gateway."""
        return gatewaychecks.wait_serving(self.config.gateway_url, timeout)

    def wait_gateway_routes_to_all(self, timeout: float = 15) -> float | None:
        """Wait until every passing worker has answered through the gateway; None if not in time."""
        wanted = {service["ID"] for service in self.passing()}
        return gatewaychecks.wait_routes_to_all(self.config.gateway_url, wanted, timeout, self.say)

    def print_status(self) -> None:
        from scripts.localmode.status import print_status

        print_status(self)
        if https := gateway.tls_summary(self.config):
            print(f"\n{https}")

    def rotate_cert(self) -> None:
        """A new gateway certificate (or the operator's replaced files), picked up by a reload of nginx."""
        cert = gateway.rotate_cert(self.config, "nginx" in self.live())
        self.say(f"gateway certificate: sha256 {cert.files.fingerprint()} ({cert.files.cert}), nginx reloaded")

    def up(self, workers: int = 2) -> None:
        """Start whatever is missing, then wait until requests succeed through the gateway."""
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        if self.supervisor.ensure_running():
            self.say(f"supervisord: started ({self.supervisor.conf_path})")
        if self.supervisor.state("consul") is None:
            # Sticky: a run directory that was secure stays secure until NER_SECURE=0 (SECURE=0).
            self.mode.record(self.secure if self.config.secure is None else self.config.secure)
        elif self.config.secure is not None and self.config.secure != self.secure:
            running = "secure" if self.secure else "normal"
            raise RuntimeError(f"the running cluster is in {running} mode: `make down` first")
        self.start_consul()
        self.start_gateway()
        if self.config.monitor:
            monitoring.start(self)
        running = max(workers, len(self.configured_workers()))
        monitoring.set_wanted(self, running)
        self._start_missing(running)
        took = self.wait_workers_passing(running)
        self.say(f"workers: {running} passing in Consul after {took:.1f}s")
        if running:
            self.wait_gateway_serving()
            self.wait_gateway_routes_to_all()
        self.say(f"gateway:   {self.config.gateway_url}  (POST /v1/ner, page at /)")
        if https := gateway.tls_summary(self.config):
            self.say(https)
        self.say(f"consul UI: {self.consul_url}/ui/")
        if "prometheus" in self.supervisor.configured():
            self.say(f"prometheus: {self.config.prometheus_url}/classic/targets  (alerts at /classic/alerts)")
        if self.secure:
            operator = self.secrets().file("operator.token")
            self.say(
                f"secure mode: ACLs default deny; the UI and `python -m registrar` need the operator "
                f"token: CONSUL_HTTP_TOKEN=$(cat {operator})"
            )

    def scale(self, count: int) -> None:
        """Grow or shrink to count workers without touching the others."""
        if count < 0:
            raise ValueError("WORKERS must be 0 or more")
        monitoring.set_wanted(self, count)
        configured = self.configured_workers()
        if len(configured) < count:
            self._start_missing(count)
        elif len(configured) > count:
            extra = configured[count:]
            self.say(f"draining {', '.join(extra)}")
            stuck = self.supervisor.remove(extra, self._stop_timeout())  # all at once, not one by one
            if stuck:
                raise RuntimeError(f"{', '.join(stuck)} did not stop in {self._stop_timeout():.0f}s")
        took = self.wait_workers_passing(count)
        if count:
            self.wait_gateway_serving()
        if count > len(configured):
            self.wait_gateway_routes_to_all()
        self.say(f"workers: {count} passing after {took:.1f}s")

    def _forget_programs(self) -> None:
        """After down: no program files, start counts or last ports, so the next up starts afresh."""
        run_dir = self.config.run_dir
        for path in [
            *self.supervisor.programs_dir.glob("*.conf"),
            *starts_dir(run_dir).glob("*"),
            *(run_dir / "work").glob("*/port"),
        ]:
            path.unlink(missing_ok=True)

    def cluster_ports(self) -> list[int]:
        """Every port a program of this cluster listens on."""
        workers = [port for name in self.configured_workers() for port in ports_in(self.supervisor.program_file(name))]
        tls = (self.config.tls_port,) if self.config.tls else ()
        return sorted({self.config.gateway_port, *tls, *consul_ports(self.config), *workers, *monitoring.ports(self)})

    def down(self) -> None:
        """Stop everything this run directory started, workers first (they drain), and check nothing is left."""
        supervisor = self.supervisor
        ports = self.cluster_ports()
        if supervisor.answering():
            workers = self.configured_workers()
            if workers:
                self.say(f"stopping {len(workers)} worker(s)")
                supervisor.remove(workers, self._stop_timeout())
            if not supervisor.shutdown():
                self.say("supervisord did not exit in time")
        sweep(supervisor, ports, self.say)
        self._forget_programs()
        self.say("cluster stopped")


def _order(name: str) -> int:
    return index_of(name) if is_worker(name) else 0
