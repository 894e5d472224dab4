"""The Consul agent of the local cluster: its program (dev mode, or a secured persistent server).

Dev mode keeps its state in memory: after a restart the workers register again by themselves
(registrar/resync.py). Secured mode (docs/SECURITY.md) keeps ACLs in RUN_DIR/consul-data, so it
is a persistent single server with gossip encryption.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from scripts.localmode.config import REPO_ROOT, ClusterConfig
from scripts.localmode.programs import Program
from scripts.ports import free_port

PRIORITY = 10


def ports_override(config: ClusterConfig, secure: bool) -> Path:
    """RUN_DIR/consul-ports.json: the HTTP port, and Serf/RPC ports of its own for this start."""
    override = config.run_dir / "consul-ports.json"
    override.parent.mkdir(parents=True, exist_ok=True)
    ports = {
        "http": config.consul_http_port,
        "dns": -1,
        "grpc": -1,
        "serf_lan": free_port(),
        "serf_wan": free_port(),
        "server": free_port(),
    }
    settings: dict = {"ports": ports}
    if secure:  # raft_multiplier 1: elections in ~1 s instead of ~5 s (also what production should use)
        settings["performance"] = {"raft_multiplier": 1}
    override.write_text(json.dumps(settings))
    return override


def consul_ports(config: ClusterConfig) -> list[int]:
    """Every port the agent listens on, from the override its program was started with."""
    try:
        ports = json.loads((config.run_dir / "consul-ports.json").read_text())["ports"]
    except (OSError, ValueError, KeyError):
        return [config.consul_http_port]
    return sorted({port for port in ports.values() if isinstance(port, int) and port > 0})


def consul_program(config: ClusterConfig, override: Path, gossip_file: Path | None = None) -> Program:
    """Dev agent (server, UI, in-memory state), or with gossip_file the secured persistent server."""
    argv = [str(config.consul_bin), "agent", "-ui", f"-config-file={REPO_ROOT / 'consul' / 'local.json'}"]
    if gossip_file is None:
        argv.insert(2, "-dev")
    else:
        data_dir = config.run_dir / "consul-data"
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv += [
            "-server",
            "-bootstrap-expect=1",
            f"-data-dir={data_dir}",
            f"-config-file={REPO_ROOT / 'consul' / 'secure.hcl'}",
            f"-config-file={gossip_file}",
        ]
    argv.append(f"-config-file={override}")
    # SIGINT: a graceful leave. Ports: a just-killed agent's sockets can linger for a moment.
    return Program(
        name="consul",
        argv=argv,
        priority=PRIORITY,
        stop_signal="INT",
        stop_wait_seconds=10,
        ports=tuple(
            json.loads(override.read_text())["ports"][key] for key in ("http", "serf_lan", "serf_wan", "server")
        ),
    )


def has_leader(config: ClusterConfig) -> bool:
    response = requests.get(f"{config.consul_url}/v1/status/leader", timeout=2)
    return response.ok and bool(response.json())
