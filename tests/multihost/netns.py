"""Test "hosts" as network namespaces on one bridge; everything is created and removed by the test.

Each host is a namespace with one veth end (`eth0`) and an address in a private /24; the
other veth ends and the bridge live in a namespace of their own, so the machine's own
network namespace and interfaces are never touched. Cutting a host's link sets its
bridge-side veth down.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

NETNS_DIR = Path("/run/netns")
PREFIX = "ner-mh"
_OWNED = re.compile(rf"^{PREFIX}-(\d+)-")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip ARGS`; failures raise with ip's own message."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def available() -> str | None:
    """None when this process may create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (RuntimeError, FileNotFoundError) as error:
        return f"cannot create a network namespace: {error}"
    ip("netns", "del", probe, check=False)
    return None


def remove_stale() -> list[str]:
    """Namespaces of this test left by runs whose process is gone (their pid is in the name)."""
    removed = []
    for entry in NETNS_DIR.glob(f"{PREFIX}-*") if NETNS_DIR.is_dir() else []:
        match = _OWNED.match(entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            ip("netns", "del", entry.name, check=False)
            removed.append(entry.name)
    return removed


@dataclass(frozen=True)
class Host:
    """One simulated machine: its namespace, address and the bridge-side end of its link."""

    name: str
    netns: str
    address: str
    bridge_port: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """command, run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *command]


@dataclass
class Network:
    """A bridge namespace and a set of host namespaces on 10.231.0.0/24 (or the given /24)."""

    subnet_prefix: str = "10.231.0"
    tag: str = field(default_factory=lambda: str(os.getpid()))
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def bridge_netns(self) -> str:
        return f"{PREFIX}-{self.tag}-bridge"

    def create_bridge(self) -> None:
        ip("netns", "add", self.bridge_netns)
        ip("-n", self.bridge_netns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_netns, "link", "set", "br0", "up")

    def add_host(self, name: str, index: int) -> Host:
        """Namespace + veth pair made inside the bridge namespace, its peer moved to the host."""
        host = Host(
            name=name,
            netns=f"{PREFIX}-{self.tag}-{name}",
            address=f"{self.subnet_prefix}.{index}",
            bridge_port=f"v{name}",
        )
        ip("netns", "add", host.netns)
        self.hosts[name] = host
        ip(
            "-n",
            self.bridge_netns,
            "link",
            "add",
            host.bridge_port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
        )
        ip("-n", self.bridge_netns, "link", "set", host.bridge_port, "master", "br0")
        ip("-n", self.bridge_netns, "link", "set", host.bridge_port, "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def cut(self, name: str) -> None:
        """Unplug a host: its bridge-side veth goes down, so nothing reaches it or leaves it."""
        ip("-n", self.bridge_netns, "link", "set", self.hosts[name].bridge_port, "down")

    def restore(self, name: str) -> None:
        ip("-n", self.bridge_netns, "link", "set", self.hosts[name].bridge_port, "up")

    def destroy(self) -> None:
        """Delete every namespace made here (their veths go with them); safe to call twice."""
        for host in list(self.hosts.values()):
            ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
        ip("netns", "del", self.bridge_netns, check=False)

    def remaining(self) -> list[str]:
        """Namespaces of this network that still exist (empty after destroy())."""
        ours = f"{PREFIX}-{self.tag}-"
        return [p.name for p in NETNS_DIR.glob(ours + "*")] if NETNS_DIR.is_dir() else []
