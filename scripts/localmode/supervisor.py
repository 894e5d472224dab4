"""supervisord for the local cluster: its configuration file, its daemon and its XML-RPC API.

One supervisord per run directory. Its control socket (RUN_DIR/supervisor/supervisor.sock, mode
0700) is the only way in, so a supervisord that answers there is this cluster's. Each program is
a file in RUN_DIR/supervisor/programs/, included by the main file: adding or removing a worker
writes or deletes its file, then `reloadConfig` + `addProcessGroup` / `removeProcessGroup`
change only that program (what `supervisorctl update` does), leaving the others running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from registrar.retrying import poll
from scripts.localmode.config import REPO_ROOT
from scripts.localmode.control import control_proxy
from scripts.localmode.procs import pid_alive
from scripts.localmode.programs import Program, log_file, program_dir

RUNNING_STATES = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}
RPC_TIMEOUT_SECONDS = 10.0
RESEND_STOP_SECONDS = 3.0
POLL_SECONDS = 0.05
STOP_POLL_SECONDS = 0.1


class SupervisorError(RuntimeError):
    """supervisord could not be started or reached."""


@dataclass(frozen=True)
class ProgramState:
    """One program as supervisord reports it."""

    name: str
    state: str  # STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN
    pid: int
    started_at: float
    now: float
    log: str
    spawn_error: str

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and self.pid > 0

    @property
    def uptime_seconds(self) -> float:
        return self.now - self.started_at if self.running else 0.0

    @classmethod
    def from_info(cls, info: dict) -> "ProgramState":
        return cls(
            name=info["name"],
            state=info["statename"],
            pid=int(info["pid"]),
            started_at=info["start"],
            now=info["now"],
            log=info["stdout_logfile"],
            spawn_error=info.get("spawnerr", ""),
        )


class Supervisor:
    """The run directory's supervisord."""

    def __init__(self, run_dir: Path, python: Path) -> None:
        self.run_dir = run_dir
        self.python = python
        self.dir = run_dir / "supervisor"

    @property
    def conf_path(self) -> Path:
        return self.dir / "supervisord.conf"

    @property
    def socket_path(self) -> Path:
        return self.dir / "supervisor.sock"

    @property
    def pid_path(self) -> Path:
        return self.dir / "supervisord.pid"

    @property
    def programs_dir(self) -> Path:
        return self.dir / "programs"

    def _rpc(self, timeout: float = RPC_TIMEOUT_SECONDS) -> xmlrpc.client.ServerProxy:
        return control_proxy(self.socket_path, timeout)

    # ---- the daemon -----------------------------------------------------------------------
    def answering(self) -> bool:
        """True when this run directory's supervisord answers on its socket."""
        if not self.socket_path.exists():
            return False
        try:
            return self._rpc(timeout=3).supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def write_conf(self) -> None:
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(f"""\
; The local cluster's process supervisor (scripts/localmode/supervisor.py writes this file).
[unix_http_server]
file={self.socket_path}
chmod=0700

[supervisord]
logfile={log_file(self.run_dir, "supervisord")}
logfile_maxbytes=10MB
logfile_backups=3
loglevel=info
pidfile={self.pid_path}
directory={self.dir}
childlogdir={self.run_dir / "logs"}
identifier=ner-cluster

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.socket_path}

[include]
files = {self.programs_dir}/*.conf
""")

    def ensure_running(self, timeout: float = 15.0) -> bool:
        """Start supervisord unless it already answers; returns True when it was started now."""
        if self.answering():
            return False
        self.write_conf()
        stale = self.daemon_pid()
        if stale is not None:
            raise SupervisorError(f"supervisord (pid {stale}) runs but does not answer on {self.socket_path}")
        self.socket_path.unlink(missing_ok=True)
        done = subprocess.run(
            [str(self.python), "-m", "supervisor.supervisord", "-c", str(self.conf_path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env=_supervisor_env(),
        )
        if poll(self.answering, timeout, POLL_SECONDS) is not None:
            return True
        tail = _tail(log_file(self.run_dir, "supervisord"))
        raise SupervisorError(f"supervisord did not start: {done.stdout}{done.stderr}\n{tail}")

    def daemon_pid(self) -> int | None:
        """supervisord's pid from its pid file, only if that process really is this run's supervisord."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if str(self.conf_path).encode() in cmdline else None

    def shutdown(self, timeout: float = 60.0) -> bool:
        """Stop every program (in reverse priority) and supervisord itself; True once it has exited."""
        pid = self.daemon_pid()
        if self.answering():
            try:
                self._rpc().supervisor.shutdown()
            except (OSError, xmlrpc.client.Error):
                pass
        if pid is not None:
            poll(lambda: not pid_alive(pid), timeout, POLL_SECONDS)
        return pid is None or not pid_alive(pid)

    # ---- programs -------------------------------------------------------------------------
    def states(self) -> dict[str, ProgramState]:
        """Every program supervisord runs, by name."""
        if not self.answering():
            return {}
        return {info["name"]: ProgramState.from_info(info) for info in self._rpc().supervisor.getAllProcessInfo()}

    def state(self, name: str) -> ProgramState | None:
        try:
            return ProgramState.from_info(self._rpc().supervisor.getProcessInfo(name))
        except xmlrpc.client.Fault:
            return None

    def program_file(self, name: str) -> Path:
        return self.programs_dir / f"{name}.conf"

    def stop_signal(self, name: str) -> str:
        """The program's stopsignal, as its file gives it."""
        try:
            for line in self.program_file(name).read_text().splitlines():
                if line.startswith("stopsignal="):
                    return line.split("=", 1)[1].strip()
        except OSError:
            pass
        return "TERM"

    def configured(self) -> list[str]:
        """Names of the programs that have a file (whether or not supervisord runs them)."""
        return sorted(path.stem for path in self.programs_dir.glob("*.conf"))

    def add(self, program: Program) -> None:
        """Write the program's file and have supervisord start it; leaves the others alone."""
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        path = self.program_file(program.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(program.section(self.python, self.run_dir))
        tmp.replace(path)
        self.activate(program.name)

    def activate(self, name: str) -> None:
        """Have supervisord run a program whose file exists (started at once), or start it again."""
        program_dir(self.run_dir, name).mkdir(parents=True, exist_ok=True)
        rpc = self._rpc()
        rpc.supervisor.reloadConfig()
        try:
            rpc.supervisor.addProcessGroup(name)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_ADDED" not in fault.faultString:
                raise
            self.start(name)

    def start(self, name: str) -> None:
        """Start a stopped, exited or fatal program; a running one is left as it is."""
        try:
            self._rpc().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def remove(self, names: list[str], timeout: float) -> list[str]:
        """Stop the programs all at once (workers drain in parallel), then drop them; returns the unstopped."""
        rpc = self._rpc(timeout=max(RPC_TIMEOUT_SECONDS, 5.0))
        for name in names:
            try:
                rpc.supervisor.stopProcess(name, False)
            except xmlrpc.client.Fault as fault:
                if "NOT_RUNNING" not in fault.faultString and "BAD_NAME" not in fault.faultString:
                    raise
        pending = set(names)
        resend_at = time.monotonic() + RESEND_STOP_SECONDS

        def all_stopped() -> bool:
            nonlocal pending, resend_at
            states = {name: self.state(name) for name in pending}
            pending = {name for name, state in states.items() if state is not None and state.state in RUNNING_STATES}
            if pending and time.monotonic() >= resend_at:
                # A stop signal that lands while a just-restarted program is still starting up can
                # be lost before the program installs its handler: repeat it (a second one is harmless).
                for name in pending:
                    if states[name].pid > 0:
                        _signal(states[name].pid, self.stop_signal(name))
                resend_at = time.monotonic() + RESEND_STOP_SECONDS
            return not pending

        poll(all_stopped, timeout, STOP_POLL_SECONDS)
        for name in names:
            self.program_file(name).unlink(missing_ok=True)
        rpc.supervisor.reloadConfig()
        for name in set(names) - pending:
            try:
                rpc.supervisor.removeProcessGroup(name)
            except xmlrpc.client.Fault as fault:
                if "BAD_NAME" not in fault.faultString:
                    raise
        return sorted(pending)


def _signal(pid: int, name: str) -> None:
    try:
        os.kill(pid, getattr(signal, f"SIG{name}"))
    except ProcessLookupError:
        pass


def _supervisor_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
