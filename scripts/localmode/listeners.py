"""Taking over another process's listening sockets, so a restarted nginx never refuses a connection.

When nginx's master is killed its workers live on and keep the gateway's listening socket. The
restarted master cannot bind the port until they are gone, and a client connecting in between is
refused. Instead, the launcher copies that socket out of a leftover worker (pidfd_getfd, Linux
5.6+) and passes it to the new master in the NGINX environment variable, which nginx reads at
start-up for inherited sockets (its binary-upgrade mechanism). Connections that arrive meanwhile
wait in the socket's queue.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from scripts.localmode.procs import listening_inodes

_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (asm-generic)
_libc = ctypes.CDLL(None, use_errno=True)


def _copy_fd(pid: int, fd: int) -> int:
    """A descriptor of ours for the same open socket as pid's fd."""
    pidfd = os.pidfd_open(pid)
    try:
        copied = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copied < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return copied
    finally:
        os.close(pidfd)


def take_listeners(pids: list[int], ports: list[int]) -> list[int]:
    """Inheritable copies of the sockets that listen on ports and that one of pids holds (one per socket)."""
    wanted = {f"socket:[{inode}]": inode for port in ports for inode in listening_inodes(port)}
    taken: dict[str, int] = {}
    for pid in pids:
        try:
            entries = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                target = os.readlink(entry)
            except OSError:
                continue
            if target in wanted and target not in taken:
                try:
                    fd = _copy_fd(pid, int(entry.name))
                except OSError:
                    continue  # older kernel or no permission: the port is bound anew after the leftovers stop
                os.set_inheritable(fd, True)
                taken[target] = fd
    return list(taken.values())
