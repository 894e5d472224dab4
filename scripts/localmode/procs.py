"""Which processes belong to a local cluster, what listens on its ports, and how to stop them.

Every program of the cluster runs with its working directory in RUN_DIR/work/NAME (the
supervisor starts it there and its children inherit it), so "a process of this cluster" is a
process whose working directory lies inside that tree. A reused pid or a process someone else
started never matches: this is what lets `down`, and a program that restarts, clear leftovers
(an nginx master's orphaned workers, a killed gunicorn master's workers) without touching
anything the cluster did not start.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterable

from registrar.retrying import poll

EXIT_POLL_SECONDS = 0.05
KILLED_EXIT_SECONDS = 2.0


def pid_alive(pid: int) -> bool:
    """True when pid runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def child_pids(pid: int) -> list[int]:
    """The live child processes of pid (a gunicorn master's workers); none once pid is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def cwd_of(pid: int) -> Path | None:
    """The process's working directory, or None once it is gone (or unreadable)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def command_of(pid: int) -> str:
    """The process's command line, for messages."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160] or "?"


def _all_pids() -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def pids_under(directory: Path, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes whose working directory is directory or lies below it."""
    root = directory.resolve()
    skip = set(exclude)
    found = []
    for pid in _all_pids():
        if pid in skip or not pid_alive(pid):
            continue
        cwd = cwd_of(pid)
        if cwd is not None and (cwd == root or root in cwd.parents):
            found.append(pid)
    return sorted(found)


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on port (any address, IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def listeners(port: int) -> list[int]:
    """Processes holding a socket that listens on port."""
    inodes = listening_inodes(port)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for pid in _all_pids():
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in wanted:
                        holders.append(pid)
                        break
                except OSError:
                    continue
    return sorted(holders)


def port_listened(port: int) -> bool:
    """True while anything listens on port."""
    return bool(listening_inodes(port))


def stop_pids(pids: Iterable[int], sig: int = signal.SIGTERM, timeout: float = 5.0) -> list[int]:
    """Send sig, wait up to timeout for them to exit, then SIGKILL the rest; returns those still alive."""
    targets = [pid for pid in pids if pid_alive(pid)]

    def all_gone() -> bool:
        return not any(pid_alive(pid) for pid in targets)

    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    poll(all_gone, timeout, EXIT_POLL_SECONDS)
    for pid in targets:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    poll(all_gone, KILLED_EXIT_SECONDS, EXIT_POLL_SECONDS)
    return [pid for pid in targets if pid_alive(pid)]
