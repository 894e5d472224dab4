"""Real processes for integration tests: free ports, readiness with deadlines, clean teardown."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from scripts.ports import free_port, free_port_block  # noqa: F401 - the tests' one source of ports
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_BIN = REPO_ROOT / ".local" / "bin"


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.05,
    describe: str = "condition",
    on_timeout: Callable[[], str] | None = None,
) -> float:
    """tests.support.waiting.wait_for under its older name and keywords (describe for what)."""
    return wait_for(predicate, timeout, describe, interval, on_timeout=on_timeout)


@dataclass
class ManagedProcess:
    """A child process with its output in a log file, stopped for sure at teardown."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd or REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"[{self.name}: no log]"
        return f"--- {self.name} log ({self.log_path}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL the whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
