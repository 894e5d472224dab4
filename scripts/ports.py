"""Loopback ports for clusters that tests and benchmarks start, chosen outside the ephemeral range.

A port asked of the kernel with bind(("127.0.0.1", 0)) comes from the ephemeral range, the same
range every outgoing connection takes its source port from. Between choosing such a port and
listening on it, a health check or a proxied request can take it, and the listener then fails.
Ports below (or above) that range are never handed out to outgoing connections.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000  # below this live the well-known and commonly configured service ports
_handed_out: set[int] = set()
WORKER_PORT_BLOCK = 16  # consecutive ports kept for one cluster's workers (the chaos scale step needs 6)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ephemeral_range() -> tuple[int, int]:
    """The kernel's source-port range for outgoing connections (Linux default if unreadable)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _candidates() -> list[range]:
    low, high = ephemeral_range()
    spans = [range(_LOWEST, low), range(high + 1, 65536)]
    return [span for span in spans if len(span) >= 64]


def free_port_block(size: int = 1, attempts: int = 200) -> int:
    """First of `size` consecutive free loopback ports, never handed out before in this process."""
    spans = _candidates()
    if not spans:
        raise RuntimeError("no port range outside the ephemeral range is large enough")
    for _ in range(attempts):
        span = random.choice(spans)
        first = random.randrange(span.start, span.stop - size + 1)
        block = range(first, first + size)
        if _handed_out.isdisjoint(block) and all(port_is_free(port) for port in block):
            _handed_out.update(block)
            return first
    raise RuntimeError(f"no {size} consecutive free ports found in {attempts} attempts")


def free_port() -> int:
    """A free loopback port outside the ephemeral range, not handed out before in this process."""
    return free_port_block(1)
