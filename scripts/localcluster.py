"""The whole cluster as plain processes on one machine: Consul, N workers, the renderer, nginx.

Every process is started detached in its own session and recorded in `RUN_DIR/state.json`,
so `up` can be run again to start only what is missing, and `down`/`scale` can find them.
The same class drives `make up/down/scale/status` and the integration tests.

Secured mode (`NER_SECURE=1`, `make up SECURE=1`; docs/SECURITY.md) runs Consul as a persistent
single server with ACLs (default deny) and gossip encryption, hands every process the token of
its role, and rate-limits the gateway more tightly. The mode is decided when Consul starts and
recorded in RUN_DIR/mode, so `scale`, `status` and `down` follow a running cluster's mode.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Callable, Mapping

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE_NAME = "ner-worker"

if str(REPO_ROOT) not in sys.path:  # scripts/cluster.py and the tests both import scripts.*
    sys.path.insert(0, str(REPO_ROOT))

from scripts.ports import WORKER_PORT_BLOCK, free_port, free_port_block, port_is_free  # noqa: E402,F401
from scripts.securemode import (RateLimit, SecretStore, ensure_acls, ensure_gossip_key,  # noqa: E402
                                limits_snippet)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ClusterConfig:
    """Where the local cluster lives and which ports it uses."""

    run_dir: Path
    gateway_host: str
    gateway_port: int
    consul_http_port: int
    worker_base_port: int
    model_dir: Path
    python: Path
    consul_bin: Path
    nginx_bin: str
    drain_seconds: float
    # Secured mode (docs/SECURITY.md): True/False from NER_SECURE=1/0; None (unset) = keep the
    # run directory's recorded mode (normal for a new one). Only acted on when `up` starts Consul.
    secure: bool | None = None
    # Gateway rate limit overrides ("" = the mode's default): NER_GATEWAY_RATE / NER_GATEWAY_BURST.
    gateway_rate: str = ""
    gateway_burst: str = ""

    def rate_limit(self, secure: bool) -> RateLimit:
        return RateLimit.from_env({"NER_GATEWAY_RATE": self.gateway_rate,
                                   "NER_GATEWAY_BURST": self.gateway_burst}, secure)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def consul_url(self) -> str:
        return f"http://127.0.0.1:{self.consul_http_port}"


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def load_config(environ: Mapping[str, str] = os.environ) -> ClusterConfig:
    """Read the local cluster's settings from the environment (all optional)."""
    gateway_host, gateway_port = _split_listen(environ.get("NER_GATEWAY_LISTEN", "127.0.0.1:8080"))
    nginx = environ.get("NER_NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
    secure_text = environ.get("NER_SECURE", "").strip().lower()
    if secure_text not in _TRUE | _FALSE:
        raise ValueError(f"NER_SECURE={secure_text!r}: expected 1 or 0")
    config = ClusterConfig(
        run_dir=Path(environ.get("NER_RUN_DIR", REPO_ROOT / ".run")).resolve(),
        gateway_host=gateway_host,
        gateway_port=gateway_port,
        consul_http_port=int(environ.get("NER_CONSUL_HTTP_PORT", "8500")),
        worker_base_port=int(environ.get("NER_WORKER_BASE_PORT", "8101")),
        model_dir=Path(environ.get("NER_MODEL_DIR", REPO_ROOT / "models/raner-msra-lstm")).resolve(),
        python=Path(environ.get("NER_PYTHON", REPO_ROOT / ".venv/bin/python")),
        consul_bin=Path(environ.get("NER_CONSUL_BIN", REPO_ROOT / ".local/bin/consul")),
        nginx_bin=nginx,
        drain_seconds=float(environ.get("NER_DRAIN_SECONDS", "3")),
        secure=None if not secure_text else secure_text in _TRUE,
        gateway_rate=environ.get("NER_GATEWAY_RATE", "").strip(),
        gateway_burst=environ.get("NER_GATEWAY_BURST", "").strip(),
    )
    config.rate_limit(bool(config.secure))  # a bad NER_GATEWAY_RATE/BURST fails here, before anything starts
    return config


def on_free_ports(config: ClusterConfig) -> ClusterConfig:
    """The same cluster on free loopback ports, so it never collides with a running `make up` cluster."""
    return replace(config, gateway_host="127.0.0.1", gateway_port=free_port(), consul_http_port=free_port(),
                   worker_base_port=free_port_block(WORKER_PORT_BLOCK))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll predicate until true; return seconds taken or raise TimeoutError naming what."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except (requests.RequestException, OSError, ValueError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """True when pid runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def child_pids(pid: int) -> list[int]:
    """The live child processes of pid (a gunicorn master's workers); none once pid is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class Proc:
    """One recorded process of the cluster."""

    name: str
    pid: int
    port: int = 0
    log: str = ""

    def alive(self) -> bool:
        return pid_alive(self.pid)


@dataclass
class LocalCluster:
    """Start, inspect, scale and stop the local cluster recorded under config.run_dir."""

    config: ClusterConfig
    say: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))

    # ---- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.config.run_dir / "state.json"

    def load_state(self) -> dict[str, Proc]:
        try:
            raw = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        return {name: Proc(**entry) for name, entry in raw.items()}

    def save_state(self, procs: dict[str, Proc]) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({name: vars(proc) for name, proc in procs.items()}, indent=2))
        tmp.replace(self.state_path)

    def live(self) -> dict[str, Proc]:
        """Recorded processes that are still running."""
        return {name: proc for name, proc in self.load_state().items() if proc.alive()}

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

    def _token_env(self, role: str) -> dict[str, str]:
        secret = self.token(role)
        return {"CONSUL_HTTP_TOKEN": secret} if secret else {}

    def _consul_headers(self, role: str = "gateway") -> dict[str, str]:
        secret = self.token(role)
        return {"X-Consul-Token": secret} if secret else {}

    def workers(self) -> dict[str, Proc]:
        """Running workers, by name (worker-1, worker-2, ...)."""
        return {n: p for n, p in sorted(self.live().items(), key=lambda kv: _worker_index(kv[0]))
                if n.startswith("worker-")}

    # ---- process start -----------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, port: int = 0) -> Proc:
        log = self.config.run_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=REPO_ROOT, env={**os.environ, **(env or {})}, start_new_session=True)
        proc = Proc(name=name, pid=child.pid, port=port, log=str(log))
        state = self.load_state()
        state[name] = proc
        self.save_state(state)
        return proc

    def _log_tail(self, proc: Proc, lines: int = 30) -> str:
        try:
            return "\n".join(Path(proc.log).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _wait_started(self, proc: Proc, ready: Callable[[], bool], timeout: float, what: str) -> float:
        def up() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start-up:\n{self._log_tail(proc)}")
            return ready()
        try:
            return wait_for(up, timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self._log_tail(proc)}") from None

    def start_consul(self) -> Proc:
        """A single-node Consul agent (dev mode: server, UI, state kept in memory).

        In secure mode a persistent single server instead (ACL state must survive restarts):
        data in RUN_DIR/consul-data, ACLs bootstrapped at the first start (docs/SECURITY.md).
        """
        cfg = self.config
        try:  # a just-killed agent's threads can hold the port for a moment after it dies
            wait_for(lambda: port_is_free(cfg.consul_http_port), 5, "the Consul port")
        except TimeoutError:
            raise RuntimeError(f"port {cfg.consul_http_port} is taken: set NER_CONSUL_HTTP_PORT") from None
        ports = {"http": cfg.consul_http_port, "dns": -1, "grpc": -1,
                 "serf_lan": free_port(), "serf_wan": free_port(), "server": free_port()}
        override = cfg.run_dir / "consul-ports.json"
        override.parent.mkdir(parents=True, exist_ok=True)
        if self.secure:
            return self._start_secure_consul(ports, override)
        override.write_text(json.dumps({"ports": ports}))
        argv = [str(cfg.consul_bin), "agent", "-dev", "-ui",
                f"-config-file={REPO_ROOT / 'consul' / 'local.json'}", f"-config-file={override}"]
        proc = self._spawn("consul", argv, port=cfg.consul_http_port)
        took = self._wait_started(proc, self.consul_has_leader, 30, "Consul leader")
        self.say(f"consul: up in {took:.1f}s, UI at {cfg.consul_url}/ui/")
        return proc

    def _start_secure_consul(self, ports: dict, override: Path) -> Proc:
        """Persistent single server + ACLs + gossip key; then make sure every role has its token."""
        cfg = self.config
        started = time.monotonic()
        store = self.secrets()
        store.ensure_dir()
        gossip = ensure_gossip_key(store, cfg.consul_bin)
        data_dir = cfg.run_dir / "consul-data"
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # raft_multiplier 1: elections in ~1 s instead of ~5 s (also what production should use).
        override.write_text(json.dumps({"ports": ports, "performance": {"raft_multiplier": 1}}))
        argv = [str(cfg.consul_bin), "agent", "-server", "-bootstrap-expect=1", f"-data-dir={data_dir}", "-ui",
                f"-config-file={REPO_ROOT / 'consul' / 'local.json'}",
                f"-config-file={REPO_ROOT / 'consul' / 'secure.hcl'}",
                f"-config-file={gossip}", f"-config-file={override}"]
        proc = self._spawn("consul", argv, port=cfg.consul_http_port)
        self._wait_started(proc, self.consul_has_leader, 30, "Consul leader")
        setup = ensure_acls(f"127.0.0.1:{cfg.consul_http_port}", store, SERVICE_NAME, say=self.say)
        took = time.monotonic() - started
        what = "ACLs bootstrapped" if setup.bootstrapped else "ACLs in place"
        self.say(f"consul: up in {took:.1f}s (secure: {what}, default deny, gossip encrypted), "
                 f"UI at {cfg.consul_url}/ui/ (log in with {store.file('operator.token')})")
        return proc

    def consul_has_leader(self) -> bool:
        response = requests.get(f"{self.config.consul_url}/v1/status/leader", timeout=2)
        return response.ok and bool(response.json())

    def _next_worker(self) -> tuple[str, int]:
        state = self.load_state()
        taken_ports = {p.port for p in state.values() if p.alive()}
        index = 1
        while f"worker-{index}" in state and state[f"worker-{index}"].alive():
            index += 1
        port = self.config.worker_base_port + index - 1
        while port in taken_ports or not port_is_free(port):
            port += 1
        return f"worker-{index}", port

    def start_worker(self) -> Proc:
        """One gunicorn worker instance that registers itself in Consul."""
        cfg = self.config
        name, port = self._next_worker()
        env = {
            "NER_BIND": f"127.0.0.1:{port}",
            "NER_MODEL_DIR": str(cfg.model_dir),
            "CONSUL_HTTP_ADDR": f"127.0.0.1:{cfg.consul_http_port}",
            "NER_DRAIN_SECONDS": str(cfg.drain_seconds),
            "PROMETHEUS_MULTIPROC_DIR": str(cfg.run_dir / "metrics" / name),
            **self._token_env("worker"),
        }
        argv = [str(cfg.python), "-m", "gunicorn", "-c", str(REPO_ROOT / "worker/gunicorn.conf.py"),
                "--name", f"ner-{name}", "--pid", str(cfg.run_dir / f"{name}.pid"), "worker.app:get_app()"]
        return self._spawn(name, argv, env=env, port=port)

    def nginx_dir(self) -> Path:
        return self.config.run_dir / "nginx"

    def nginx_args(self) -> list[str]:
        prefix = self.nginx_dir()
        return ["-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]

    def write_nginx_conf(self) -> None:
        """Fill nginx.conf.tmpl for this run directory and gateway port."""
        prefix = self.nginx_dir()
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        template = (REPO_ROOT / "nginx-template" / "nginx.conf.tmpl").read_text()
        (prefix / "nginx.conf").write_text(_render_upstream().fill_nginx_conf(
            template, prefix=str(prefix), upstream_conf=str(prefix / "upstream.conf"),
            listen=f"{self.config.gateway_host}:{self.config.gateway_port}"))
        self.write_limits()

    def write_limits(self) -> None:
        """PREFIX/limits.d/rate.conf, the per-client rate limit nginx.conf.tmpl includes (if any)."""
        secure = self.secure
        snippet = limits_snippet(self.config.rate_limit(secure), "secure" if secure else "normal")
        path = self.nginx_dir() / "limits.d" / "rate.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        if snippet is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(snippet)

    def renderer_argv(self, once: bool = False) -> tuple[str, list[str]]:
        """consul-template when it is on PATH, our renderer otherwise; the same template either way.

        once=True renders a single time without reloading: nginx is not running yet.
        """
        cfg, prefix = self.config, self.nginx_dir()
        template = REPO_ROOT / "nginx-template" / "upstream.ctmpl"
        out = prefix / "upstream.conf"
        consul_template = shutil.which("consul-template")
        if consul_template:
            reload_cmd = f"{REPO_ROOT / 'nginx-template' / 'reload-nginx.sh'} {prefix} {prefix / 'nginx.conf'} {out}"
            spec = f"{template}:{out}" if once else f"{template}:{out}:{reload_cmd}"
            argv = [consul_template, f"-consul-addr=127.0.0.1:{cfg.consul_http_port}", "-wait=200ms:2s",
                    f"-template={spec}"]
            return "consul-template", argv + (["-once"] if once else [])
        argv = [str(cfg.python), str(REPO_ROOT / "nginx-template" / "render_upstream.py"),
                "--consul", f"127.0.0.1:{cfg.consul_http_port}", "--template", str(template),
                "--out", str(out), "--nginx-bin", cfg.nginx_bin,
                "--nginx-prefix", str(prefix), "--nginx-conf", str(prefix / "nginx.conf")]
        return "project renderer (consul-template not on PATH)", argv + (["--once", "--no-reload"] if once else [])

    def start_gateway(self) -> list[Proc]:
        """Render the upstream once, start nginx, then keep the upstream live with the renderer."""
        cfg = self.config
        if not port_is_free(cfg.gateway_port, cfg.gateway_host):
            raise RuntimeError(f"port {cfg.gateway_port} is taken: set NER_GATEWAY_LISTEN")
        self.write_nginx_conf()
        _, once = self.renderer_argv(once=True)
        token_env = self._token_env("gateway")
        subprocess.run(once, check=True,
                       cwd=REPO_ROOT, capture_output=True, timeout=30, env={**os.environ, **token_env})
        nginx = self._spawn("nginx", [cfg.nginx_bin, *self.nginx_args()], port=cfg.gateway_port)
        self._wait_started(nginx, self.gateway_alive, 15, "nginx gateway")
        kind, argv = self.renderer_argv()
        renderer = self._spawn("renderer", argv, env=token_env)
        self.say(f"gateway: nginx at {cfg.gateway_url}, upstream kept by {kind}")
        return [nginx, renderer]

    def gateway_alive(self) -> bool:
        return requests.get(f"{self.config.gateway_url}/gateway/health", timeout=2).ok

    # ---- cluster operations ------------------------------------------------------------
    def passing(self) -> list[dict]:
        """Healthy ner-worker instances as Consul reports them."""
        response = requests.get(f"{self.config.consul_url}/v1/health/service/{SERVICE_NAME}",
                                params={"passing": "1"}, headers=self._consul_headers(), timeout=5)
        response.raise_for_status()
        return [entry["Service"] for entry in response.json()]

    def _start_missing(self, count: int) -> None:
        for _ in range(count - len(self.workers())):
            proc = self.start_worker()
            self.say(f"{proc.name}: starting on 127.0.0.1:{proc.port}")

    def wait_workers_passing(self, count: int, timeout: float = 60, replace_dead: bool = False) -> float:
        """Wait until count workers run and each one's port passes in Consul.

        With replace_dead, a worker that dies meanwhile (one killed just before `up`) is
        replaced instead of being waited for.
        """
        def settled() -> bool:
            if replace_dead:
                self._start_missing(count)
            ports = {proc.port for proc in self.workers().values()}
            passing = self.passing()
            return len(ports) == count and len(passing) == count and {s["Port"] for s in passing} == ports
        try:
            return wait_for(settled, timeout, f"{count} passing workers")
        except TimeoutError as error:
            tails = "\n".join(f"--- {p.name}\n{self._log_tail(p, 15)}" for p in self.workers().values())
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
        """The local processes, then every worker as Consul sees it and as its /metrics reports its load."""
        from registrar.cli import print_instances
        from registrar.client import build_client
        from registrar.config import load_config as registrar_config
        from registrar.inventory import list_instances

        live = self.live()
        for name in ("consul", "nginx", "renderer"):
            proc = live.get(name)
            print(f"{name:<9} {'up (pid %d)' % proc.pid if proc else 'down'}")
        local = {proc.port: name for name, proc in self.workers().items()}
        print(f"workers   {len(local)} running locally: {', '.join(sorted(local.values())) or '-'}")
        if "consul" not in live:
            return
        print()
        config = registrar_config({"CONSUL_HTTP_ADDR": f"127.0.0.1:{self.config.consul_http_port}",
                                   **self._token_env("operator")})
        print_instances(list_instances(build_client(config), SERVICE_NAME))

    def up(self, workers: int = 2) -> None:
        """Start whatever is missing, then wait until requests succeed through the gateway."""
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        live = self.live()
        if "consul" not in live:
            # Sticky: a run directory that was secure stays secure until NER_SECURE=0 (SECURE=0).
            self._set_mode(self.secure if self.config.secure is None else self.config.secure)
            self.start_consul()
        elif self.config.secure is not None and self.config.secure != self.secure:
            running = "secure" if self.secure else "normal"
            raise RuntimeError(f"the running cluster is in {running} mode: `make down` first")
        elif self.secure:  # idempotent: re-creates a token whose file was removed (rotation)
            ensure_acls(f"127.0.0.1:{self.config.consul_http_port}", self.secrets(), SERVICE_NAME,
                        say=self.say)
        if "nginx" not in live or "renderer" not in live:
            for name in ("renderer", "nginx"):
                if name in live:
                    self._stop([live[name]])
            self.start_gateway()
        running = max(workers, len(self.workers()))
        self._start_missing(running)
        took = self.wait_workers_passing(running, replace_dead=True)
        self.say(f"workers: {running} passing in Consul after {took:.1f}s")
        if running:
            self.wait_gateway_serving()
            self.wait_gateway_routes_to_all()
        self.say(f"gateway:   {self.config.gateway_url}  (POST /v1/ner, page at /)")
        self.say(f"consul UI: {self.config.consul_url}/ui/")
        if self.secure:
            operator = self.secrets().file("operator.token")
            self.say(f"secure mode: ACLs default deny; the UI and `python -m registrar` need the operator "
                     f"token: CONSUL_HTTP_TOKEN=$(cat {operator})")

    def scale(self, count: int) -> None:
        """Grow or shrink to count workers without touching the others."""
        if count < 0:
            raise ValueError("WORKERS must be 0 or more")
        current = self.workers()
        if len(current) < count:
            self._start_missing(count)
        elif len(current) > count:
            extra = list(current.values())[count:]
            self.say(f"draining {', '.join(p.name for p in extra)}")
            self._stop(extra)
        took = self.wait_workers_passing(count)
        if count:
            self.wait_gateway_serving()
        if count > len(current):
            self.wait_gateway_routes_to_all()
        self.say(f"workers: {count} passing after {took:.1f}s")

    def _stop(self, procs: list[Proc], timeout: float | None = None) -> None:
        """SIGTERM (workers drain first), wait, then SIGKILL what is left of each process group."""
        timeout = timeout if timeout is not None else self.config.drain_seconds + 25
        for proc in procs:
            if proc.alive():
                os.kill(proc.pid, signal.SIGQUIT if proc.name == "nginx" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.alive() for p in procs):
            time.sleep(0.1)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        state = self.load_state()
        for proc in procs:
            state.pop(proc.name, None)
        self.save_state(state)

    def down(self) -> None:
        """Stop everything this run directory started: workers first (they drain), then the rest."""
        live = self.live()
        workers = [p for n, p in live.items() if n.startswith("worker-")]
        if workers:
            self.say(f"stopping {len(workers)} worker(s)")
            self._stop(workers)
        for name in ("renderer", "nginx", "consul"):
            if name in live:
                self._stop([live[name]], timeout=10)
        self.save_state({})
        self.say("cluster stopped")


def _render_upstream() -> ModuleType:
    """nginx-template/render_upstream.py, a script by design, imported for its nginx.conf filler."""
    path = REPO_ROOT / "nginx-template" / "render_upstream.py"
    if "render_upstream" not in sys.modules:
        spec = importlib.util.spec_from_file_location("render_upstream", path)
        sys.modules["render_upstream"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["render_upstream"])
    return sys.modules["render_upstream"]


def _worker_index(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
