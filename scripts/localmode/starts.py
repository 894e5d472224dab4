"""Starting each program of the local cluster under its supervisor: Consul, the gateway, workers.

A part of LocalCluster (scripts/localcluster.py), which supplies config, supervisor, mode, say,
live() and port_of(); kept apart so the cluster's operations read on their own.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from scripts.localmode import gateway, gatewaychecks
from scripts.localmode.config import SERVICE_NAME
from scripts.localmode.consul import consul_program, has_leader, ports_override
from scripts.localmode.procs import command_of, listeners, pids_under
from scripts.localmode.programs import Program, log_file, program_dir
from scripts.localmode.waiting import wait_for
from scripts.localmode.workers import WorkerModel, current_port, worker_ports, worker_program
from scripts.ports import port_is_free
from scripts.secured.acl_setup import ensure_acls
from scripts.secured.consul_tls import ensure_consul_tls
from scripts.secured.secretfiles import ensure_gossip_key

if TYPE_CHECKING:
    from scripts.localcluster import Proc

ACTIVE_STATES = ("STARTING", "RUNNING", "BACKOFF", "STOPPING")


class ProgramStarts:
    """Add a program to the supervisor unless it has it, start it if stopped, wait until it serves."""

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
        foreign = [pid for pid in listeners(port) if pid not in set(pids_under(self.config.run_dir / "work"))]
        if foreign:
            who = ", ".join(f"pid {pid} ({command_of(pid)})" for pid in foreign)
            raise RuntimeError(f"port {port} is taken by {who}: stop it or set {setting}")

    def _ensure(self, name: str, build: Callable[[], object]) -> bool:
        """Add the program if the supervisor does not have it, start it if it is stopped; True if added."""
        state = self.supervisor.state(name)
        if state is None:
            self.supervisor.add(build())
            return True
        if state.state not in ACTIVE_STATES:
            self.say(f"{name}: {state.state.lower()}, starting it again")
            self.supervisor.start(name)
        return False

    # ---- programs ---------------------------------------------------------------------------
    def start_consul(self) -> Proc:
        """The Consul agent: dev mode, or in secure mode a persistent server with ACLs (docs/SECURITY.md)."""
        cfg = self.config
        self.supervisor.ensure_running()
        # Secure: the CA and Consul's certificate exist (issued again when due) before anyone dials it.
        tls = ensure_consul_tls(cfg.run_dir / "tls") if self.secure else None

        def build():
            self._check_port(cfg.consul_http_port, "NER_CONSUL_HTTP_PORT")
            gossip = None
            if self.secure:
                store = self.secrets()
                store.ensure_dir()
                gossip = ensure_gossip_key(store, cfg.consul_bin)
            return consul_program(cfg, ports_override(cfg, self.secure), gossip, tls)

        self._ensure("consul", build)
        url = self.mode.consul_url(cfg.consul_http_port)
        took = self._wait_program("consul", self.consul_has_leader, 30, "Consul leader")
        if self.secure:
            store = self.secrets()
            setup = ensure_acls(url, store, SERVICE_NAME, say=self.say, ca_file=tls.ca_file)
            what = "ACLs bootstrapped" if setup.bootstrapped else "ACLs in place"
            self.say(
                f"consul: up in {took:.1f}s (secure: {what}, default deny, gossip encrypted, HTTPS only), "
                f"UI at {url}/ui/ (log in with {store.file('operator.token')}; CA {tls.ca_file})"
            )
        else:
            self.say(f"consul: up in {took:.1f}s, UI at {url}/ui/")
        return self.live()["consul"]

    def consul_has_leader(self) -> bool:
        return has_leader(self.mode.consul_url(self.config.consul_http_port), self.mode.consul_verify())

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
                gateway.render_once(cfg, {**os.environ, **self.token_env("gateway"), **self.mode.consul_client_env()})
            return gateway.nginx_program(cfg)

        self._ensure("nginx", build_nginx)
        self._wait_program("nginx", self.gateway_alive, 15, "nginx gateway")
        self._ensure("renderer", lambda: self._consul_client(gateway.renderer_program(cfg, self.token_file("gateway"))))
        kind, _ = gateway.renderer_argv(cfg)
        self.say(f"gateway: nginx at {cfg.gateway_url}, upstream kept by {kind}")

    def gateway_alive(self) -> bool:
        return gatewaychecks.gateway_alive(self.config.gateway_url)

    def _free_worker_slot(self) -> tuple[int, tuple[int, ...]]:
        """The lowest worker index that is not configured and whose ports nothing holds."""
        configured = set(self.configured_workers())
        index = 1
        while f"worker-{index}" in configured or not all(port_is_free(p) for p in worker_ports(self.config, index)):
            index += 1
        return index, worker_ports(self.config, index)

    def start_worker(self, model: WorkerModel | None = None) -> Proc:
        """One more worker program: gunicorn, which registers itself in Consul; of `model` or the
        run directory's current model (scripts/localmode/versions.py)."""
        from scripts.localmode.versions import current_model, record_worker_model

        model = model or current_model(self.config)
        index, ports = self._free_worker_slot()
        program = self._consul_client(worker_program(self.config, index, ports, self.token_file("worker"), model))
        (program_dir(self.config.run_dir, program.name) / "port").unlink(missing_ok=True)
        record_worker_model(self.config.run_dir, program.name, model)
        self.supervisor.add(program)
        # The launcher writes the port it chose as the program starts.
        wait_for(lambda: current_port(self.config.run_dir, program.name), 10, f"{program.name} to start")
        state = self.supervisor.state(program.name)
        from scripts.localcluster import Proc

        return Proc(
            name=program.name,
            pid=state.pid if state else 0,
            port=self.port_of(program.name),
            log=state.log if state else "",
        )

    def stop_worker(self, name: str) -> None:
        """Drain one worker and drop its program (the others keep running)."""
        stuck = self.supervisor.remove([name], self._stop_timeout())
        if stuck:
            raise RuntimeError(f"{name} did not stop in {self._stop_timeout():.0f}s")

    def _consul_client(self, program: Program) -> Program:
        """The program with what it needs to reach Consul's API over HTTPS and verify it (secure mode)."""
        return replace(program, env={**program.env, **self.mode.consul_client_env()})

    def _stop_timeout(self) -> float:
        return worker_program(self.config, 1, (), None).stop_wait_seconds + 10
