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

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from scripts.localmode import gateway, monitoring
from scripts.localmode.config import REPO_ROOT, SERVICE_NAME, ClusterConfig, load_config, on_free_ports
from scripts.localmode.consul import consul_ports, consul_program, has_leader, ports_override
from scripts.localmode.procs import (child_pids, command_of, listeners, pid_alive, pids_under, port_listened,
                                     stop_pids)
from scripts.localmode.programs import log_file, program_dir, starts_dir
from scripts.localmode.supervisor import ProgramState, Supervisor
from scripts.localmode.waiting import wait_for
from scripts.localmode.workers import current_port, index_of, is_worker, ports_in, worker_ports, worker_program
from scripts.ports import port_is_free
from scripts.secured.acl_setup import ensure_acls
from scripts.secured.secretfiles import SecretStore, ensure_gossip_key

__all__ = ["REPO_ROOT", "SERVICE_NAME", "ClusterConfig", "LocalCluster", "Proc", "child_pids", "load_config",
           "on_free_ports", "pid_alive", "port_is_free", "wait_for"]

LEFTOVER_STOP_SECONDS = 10.0


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
class LocalCluster:
    """Start, inspect, scale and stop the local cluster of config.run_dir."""

    config: ClusterConfig
    say: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))

    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.config.run_dir, self.config.python)

    # ---- secured mode -----------------------------------------------------------------------
    @property
    def mode_path(self) -> Path:
        return self.config.run_dir / "mode"

    @property
    def secure(self) -> bool:
        """The mode of the Consul this run directory started last; config.secure before any start."""
        try:
            return self.mode_path.read_text().strip() == "secure"
        except FileNotFoundError:
            return bool(self.config.secure)

    def _set_mode(self, secure: bool) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        self.mode_path.write_text("secure\n" if secure else "normal\n")

    def secrets(self) -> SecretStore:
        """RUN_DIR/secrets: 0700 directory, one 0600 file per secret (docs/SECURITY.md)."""
        return SecretStore(self.config.run_dir / "secrets")

    def token(self, role: str) -> str | None:
        """The Consul token of a role (worker, gateway, agent, operator) in secure mode, else None."""
        if not self.secure:
            return None
        secret = self.secrets().token(role)
        if not secret:
            raise RuntimeError(f"secure mode, but no {role} token in {self.secrets().path}: run `up` again")
        return secret

    def token_file(self, role: str) -> Path | None:
        """Where a program reads its role's token at each start (kept out of the supervisor's files)."""
        return self.secrets().file(f"{role}.token") if self.secure else None

    def token_env(self, role: str) -> dict[str, str]:
        secret = self.token(role)
        return {"CONSUL_HTTP_TOKEN": secret} if secret else {}

    def _consul_headers(self, role: str = "gateway") -> dict[str, str]:
        secret = self.token(role)
        return {"X-Consul-Token": secret} if secret else {}

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
        return {name: self._proc(state) for name, state in self.supervisor.states().items()
                if state.pid > 0 and state.state in ("STARTING", "RUNNING") and pid_alive(state.pid)}

    def workers(self) -> dict[str, Proc]:
        """Running workers, by name (worker-1, worker-2, ...)."""
        return {name: proc for name, proc in sorted(self.live().items(), key=lambda kv: _order(kv[0]))
                if is_worker(name)}

    def configured_workers(self) -> list[str]:
        """Worker programs the supervisor keeps, running or not."""
        return sorted((name for name in self.supervisor.configured() if is_worker(name)), key=index_of)

    def _log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(log_file(self.config.run_dir, name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _wait_program(self, name: str, ready: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait until ready(); a program that the supervisor gave up on (FATAL) fails at once, with its log."""
        def up() -> bool:
            state = self.supervisor.state(name)
            if state is not None and state.state == "FATAL":
                raise RuntimeError(f"{name} keeps exiting during start-up:\n{self._log_tail(name)}")
            return ready()
        try:
            return wait_for(up, timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self._log_tail(name)}") from None

    def _check_port(self, port: int, setting: str) -> None:
        """A port held by a process the cluster did not start is an error the user must resolve."""
        if not port_listened(port):
            return
        ours = set(pids_under(self.config.run_dir / "work"))
        foreign = [pid for pid in listeners(port) if pid not in ours]
        if foreign:
            who = ", ".join(f"pid {pid} ({command_of(pid)})" for pid in foreign)
            raise RuntimeError(f"port {port} is taken by {who}: stop it or set {setting}")

    def _ensure(self, name: str, build: Callable[[], object]) -> bool:
        """Add the program if the supervisor does not have it, start it if it is stopped; True if added."""
        state = self.supervisor.state(name)
        if state is None:
            self.supervisor.add(build())
            return True
        if state.state not in ("STARTING", "RUNNING", "BACKOFF", "STOPPING"):
            self.say(f"{name}: {state.state.lower()}, starting it again")
            self.supervisor.start(name)
        return False

    # ---- programs ---------------------------------------------------------------------------
    def start_consul(self) -> Proc:
        """The Consul agent: dev mode, or in secure mode a persistent server with ACLs (docs/SECURITY.md)."""
        cfg = self.config
        self.supervisor.ensure_running()

        def build():
            self._check_port(cfg.consul_http_port, "NER_CONSUL_HTTP_PORT")
            gossip = None
            if self.secure:
                store = self.secrets()
                store.ensure_dir()
                gossip = ensure_gossip_key(store, cfg.consul_bin)
            return consul_program(cfg, ports_override(cfg, self.secure), gossip)

        self._ensure("consul", build)
        took = self._wait_program("consul", lambda: has_leader(cfg), 30, "Consul leader")
        if self.secure:
            store = self.secrets()
            setup = ensure_acls(f"127.0.0.1:{cfg.consul_http_port}", store, SERVICE_NAME, say=self.say)
            what = "ACLs bootstrapped" if setup.bootstrapped else "ACLs in place"
            self.say(f"consul: up in {took:.1f}s (secure: {what}, default deny, gossip encrypted), "
                     f"UI at {cfg.consul_url}/ui/ (log in with {store.file('operator.token')})")
        else:
            self.say(f"consul: up in {took:.1f}s, UI at {cfg.consul_url}/ui/")
        return self.live()["consul"]

    def consul_has_leader(self) -> bool:
        return has_leader(self.config)

    def nginx_dir(self) -> Path:
        return gateway.nginx_dir(self.config)

    def nginx_args(self) -> list[str]:
        return gateway.nginx_args(self.config)

    def start_gateway(self) -> None:
        """nginx with a first upstream rendered, then the renderer that keeps it live."""
        cfg = self.config
        gateway.write_nginx_conf(cfg, self.secure)

        def build_nginx():
            self._check_port(cfg.gateway_port, "NER_GATEWAY_LISTEN")
            if not (self.nginx_dir() / "upstream.conf").exists():
                gateway.render_once(cfg, {**os.environ, **self.token_env("gateway")})
            return gateway.nginx_program(cfg)

        self._ensure("nginx", build_nginx)
        self._wait_program("nginx", self.gateway_alive, 15, "nginx gateway")
        self._ensure("renderer", lambda: gateway.renderer_program(cfg, self.token_file("gateway")))
        kind, _ = gateway.renderer_argv(cfg)
        self.say(f"gateway: nginx at {cfg.gateway_url}, upstream kept by {kind}")

    def gateway_alive(self) -> bool:
        return requests.get(f"{self.config.gateway_url}/gateway/health", timeout=2).ok

    def _free_worker_slot(self) -> tuple[int, tuple[int, ...]]:
        """The lowest worker index that is not configured and whose ports nothing holds."""
        configured = set(self.configured_workers())
        index = 1
        while f"worker-{index}" in configured or not all(port_is_free(p) for p in worker_ports(self.config, index)):
            index += 1
        return index, worker_ports(self.config, index)

    def start_worker(self) -> Proc:
        """One more worker program: gunicorn, which registers itself in Consul."""
        index, ports = self._free_worker_slot()
        program = worker_program(self.config, index, ports, self.token_file("worker"))
        (program_dir(self.config.run_dir, program.name) / "port").unlink(missing_ok=True)
        self.supervisor.add(program)
        # The launcher writes the port it chose as the program starts.
        wait_for(lambda: current_port(self.config.run_dir, program.name), 10, f"{program.name} to start")
        state = self.supervisor.state(program.name)
        return Proc(name=program.name, pid=state.pid if state else 0, port=self.port_of(program.name),
                    log=state.log if state else "")

    def stop_worker(self, name: str) -> None:
        """Drain one worker and drop its program (the others keep running)."""
        stuck = self.supervisor.remove([name], self._stop_timeout())
        if stuck:
            raise RuntimeError(f"{name} did not stop in {self._stop_timeout():.0f}s")

    # ---- cluster operations ------------------------------------------------------------
    def passing(self) -> list[dict]:
        """Healthy ner-worker instances as Consul reports them."""
        response = requests.get(f"{self.config.consul_url}/v1/health/service/{SERVICE_NAME}",
                                params={"passing": "1"}, headers=self._consul_headers(), timeout=5)
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
        def served() -> bool:
            response = requests.post(f"{self.config.gateway_url}/v1/ner", json={"text": "张三在北京工作。"},
                                     timeout=5)
            return response.status_code == 200
        return wait_for(served, timeout, "a request to succeed through the gateway")

    def wait_gateway_routes_to_all(self, timeout: float = 15) -> float | None:
        """Wait until every passing worker has answered through the gateway (X-Worker-Id).

        Consul reports a new worker passing a moment before the renderer has rewritten the
        upstream and reloaded nginx; callers that go on to spread requests need the latter.
        Returns the seconds taken, or None (with a message) if not seen in time.
        """
        wanted = {service["ID"] for service in self.passing()}
        seen: set[str] = set()

        def all_seen() -> bool:
            response = requests.post(f"{self.config.gateway_url}/v1/ner", json={"text": "张三在北京工作。"},
                                     timeout=5)
            if response.status_code == 200:
                seen.add(response.headers.get("X-Worker-Id", ""))
            return wanted <= seen
        try:
            return wait_for(all_seen, timeout, "every passing worker to answer through the gateway",
                            interval=0.05)
        except TimeoutError:
            self.say(f"gateway: not yet routing to {', '.join(sorted(wanted - seen))} after {timeout:.0f}s")
            return None

    def print_status(self) -> None:
        from scripts.localmode.status import print_status

        print_status(self)

    def up(self, workers: int = 2) -> None:
        """Start whatever is missing, then wait until requests succeed through the gateway."""
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        if self.supervisor.ensure_running():
            self.say(f"supervisord: started ({self.supervisor.conf_path})")
        if self.supervisor.state("consul") is None:
            # Sticky: a run directory that was secure stays secure until NER_SECURE=0 (SECURE=0).
            self._set_mode(self.secure if self.config.secure is None else self.config.secure)
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
        self.say(f"consul UI: {self.config.consul_url}/ui/")
        if "prometheus" in self.supervisor.configured():
            self.say(f"prometheus: {self.config.prometheus_url}/classic/targets  (alerts at /classic/alerts)")
        if self.secure:
            operator = self.secrets().file("operator.token")
            self.say(f"secure mode: ACLs default deny; the UI and `python -m registrar` need the operator "
                     f"token: CONSUL_HTTP_TOKEN=$(cat {operator})")

    def _stop_timeout(self) -> float:
        return worker_program(self.config, 1, (), None).stop_wait_seconds + 10

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
        for path in [*self.supervisor.programs_dir.glob("*.conf"), *starts_dir(run_dir).glob("*"),
                     *(run_dir / "work").glob("*/port")]:
            path.unlink(missing_ok=True)

    def cluster_ports(self) -> list[int]:
        """Every port a program of this cluster listens on."""
        workers = [port for name in self.configured_workers() for port in ports_in(self.supervisor.program_file(name))]
        return sorted({self.config.gateway_port, *consul_ports(self.config), *workers, *monitoring.ports(self)})

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
        leftovers = pids_under(self.config.run_dir / "work")
        daemon = supervisor.daemon_pid()
        if daemon is not None:
            leftovers.append(daemon)
        if leftovers:
            self.say("stopping what the supervisor no longer watched: "
                     + "; ".join(f"{pid} {command_of(pid)}" for pid in leftovers))
            stop_pids(leftovers, timeout=LEFTOVER_STOP_SECONDS)
        self._forget_programs()
        remaining = pids_under(self.config.run_dir / "work")
        held = {port: listeners(port) for port in ports if port_listened(port)}
        if remaining:
            raise RuntimeError("left running: " + "; ".join(f"pid {pid} ({command_of(pid)})" for pid in remaining)
                               + "".join(f"; port {port} listened on" for port in held))
        for port, holders in held.items():  # nothing of ours runs: whoever listens there, we did not start
            self.say(f"note: port {port} is in use by {', '.join(command_of(pid) for pid in holders) or 'another user'}"
                     ", which this cluster did not start")
        self.say("cluster stopped")


def _order(name: str) -> int:
    return index_of(name) if is_worker(name) else 0
