"""The programs of the local cluster as the supervisor runs them: command, environment, how to stop.

Priorities order start-up and shut-down (lower starts first and stops last): Consul, nginx, the
renderer, then the workers, so `down` drains the workers while the gateway and Consul still run.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from scripts.localmode.config import REPO_ROOT

# Restarts after a failed start wait 1 s, 2 s, 3 s, ... (supervisord's backoff); after this many
# failed starts in a row the program is FATAL and `make up` or `make status` says so.
START_RETRIES = 8
LOG_MAX_BYTES = "10MB"  # each program's log rotates at this size, keeping LOG_BACKUPS old files
LOG_BACKUPS = 3


@dataclass(frozen=True)
class Program:
    """One supervised program."""

    name: str
    argv: list[str]
    priority: int
    stop_signal: str = "TERM"
    stop_wait_seconds: float = 10.0  # after stop_signal, the supervisor kills the process group
    # How the launcher stops what an earlier run left behind (None: as stop_signal does).
    leftover_signal: str | None = None
    ports: tuple[int, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    token_file: Path | None = None
    inherit_listeners: bool = False  # take over a leftover's listening sockets (nginx only)
    # Workers: the launcher exports NER_BIND on one of these ports, another at each restart.
    bind_ports: tuple[int, ...] = ()

    def launcher_argv(self, python: Path, run_dir: Path) -> list[str]:
        """The launcher clears an earlier run's leftovers, then becomes argv."""
        argv = [
            str(python),
            "-m",
            "scripts.localmode.launch",
            "--signal",
            self.leftover_signal or self.stop_signal,
            "--timeout",
            f"{self.stop_wait_seconds:g}",
            "--starts-file",
            str(starts_file(run_dir, self.name)),
        ]
        for port in self.ports:
            argv += ["--port", str(port)]
        if self.token_file is not None:
            argv += ["--token-file", str(self.token_file)]
        if self.inherit_listeners:
            argv.append("--inherit-listeners")
        if self.bind_ports:
            argv += ["--bind-env", "NER_BIND", *(f"--bind-port={port}" for port in self.bind_ports)]
        return argv + ["--", *self.argv]

    def section(self, python: Path, run_dir: Path) -> str:
        """The program's supervisord.conf section."""
        env = {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **self.env}
        lines = [
            f"[program:{self.name}]",
            f"command={_escape(shlex.join(self.launcher_argv(python, run_dir)))}",
            f"directory={_escape(str(program_dir(run_dir, self.name)))}",
            "environment=" + ",".join(f'{key}="{_escape(value)}"' for key, value in env.items()),
            f"priority={self.priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            f"startretries={START_RETRIES}",
            f"stopsignal={self.stop_signal}",
            f"stopwaitsecs={int(self.stop_wait_seconds + 0.999)}",
            "stopasgroup=false",  # the program's own process signals its children (gunicorn, nginx)
            "killasgroup=true",  # but a kill after stopwaitsecs takes the whole group
            "redirect_stderr=true",
            f"stdout_logfile={_escape(str(log_file(run_dir, self.name)))}",
            f"stdout_logfile_maxbytes={LOG_MAX_BYTES}",
            f"stdout_logfile_backups={LOG_BACKUPS}",
        ]
        return "\n".join(lines) + "\n"


def program_dir(run_dir: Path, name: str) -> Path:
    """The program's working directory: what marks its processes as this cluster's (procs.py)."""
    return run_dir / "work" / name


def log_file(run_dir: Path, name: str) -> Path:
    return run_dir / "logs" / f"{name}.log"


def starts_dir(run_dir: Path) -> Path:
    """One file per program, a line per start: the launcher writes them, status counts restarts."""
    return run_dir / "supervisor" / "starts"


def starts_file(run_dir: Path, name: str) -> Path:
    return starts_dir(run_dir) / name


def _escape(value: str) -> str:
    """supervisord expands %(name)s in its values, and environment values are double-quoted."""
    if '"' in value or "\n" in value:
        raise ValueError(f"unsupported character in supervisor value: {value!r}")
    return value.replace("%", "%%")
