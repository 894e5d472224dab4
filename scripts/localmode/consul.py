"""The Consul agent of the local cluster: its program (dev mode, or a secured persistent server).

Dev mode keeps its state in memory: after a restart the workers register again by themselves
(registrar/resync.py). Secured mode (docs/SECURITY.md) keeps ACLs in RUN_DIR/consul-data, so it
is a persistent single server with gossip encryption, and its API port speaks HTTPS only, with a
certificate from the cluster's CA in RUN_DIR/tls.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from scripts.localmode.config import REPO_ROOT, ClusterConfig
from scripts.localmode.programs import Program
from scripts.ports import free_port
from scripts.secured.consul_tls import ConsulTls, write_agent_settings

PRIORITY = 10


def ports_override(config: ClusterConfig, secure: bool) -> Path:
    """RUN_DIR/consul-ports.json: the API port (HTTPS only when secure), Serf/RPC ports of its own for this start."""
    override = config.run_dir / "consul-ports.json"
    override.parent.mkdir(parents=True, exist_ok=True)
    # Secure: the plain HTTP listener is off, so a token never crosses the loopback in the clear.
    api = {"http": -1, "https": config.consul_http_port} if secure else {"http": config.consul_http_port}
    ports = {
        **api,
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
    return _listened(ports)


def _listened(ports: dict) -> list[int]:
    return sorted({port for port in ports.values() if isinstance(port, int) and port > 0})


def consul_program(
    config: ClusterConfig, override: Path, gossip_file: Path | None = None, tls: ConsulTls | None = None
) -> Program:
    """Dev agent (server, UI, in-memory state), or with gossip_file and tls the secured persistent server."""
    argv = [str(config.consul_bin), "agent", "-ui", f"-config-file={REPO_ROOT / 'consul' / 'local.json'}"]
    if gossip_file is None:
        argv.insert(2, "-dev")
    elif tls is None:
        raise ValueError("a secured Consul needs its TLS files")
    else:
        data_dir = config.run_dir / "consul-data"
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv += [
            "-server",
            "-bootstrap-expect=1",
            f"-data-dir={data_dir}",
            f"-config-file={REPO_ROOT / 'consul' / 'secure.hcl'}",
            f"-config-file={gossip_file}",
            f"-config-file={REPO_ROOT / 'consul' / 'tls.hcl'}",
            f"-config-file={write_agent_settings(tls, config.run_dir / 'consul-tls.json')}",
        ]
    argv.append(f"-config-file={override}")
    # SIGINT: a graceful leave. Ports: a just-killed agent's sockets can linger for a moment.
    return Program(
        name="consul",
        argv=argv,
        priority=PRIORITY,
        stop_signal="INT",
        stop_wait_seconds=10,
        ports=tuple(_listened(json.loads(override.read_text())["ports"])),
    )


def has_leader(url: str, verify: str | bool = True) -> bool:
    """Whether the agent at url (its API, scheme included) knows a Raft leader."""
    response = requests.get(f"{url}/v1/status/leader", timeout=2, verify=verify)
    return response.ok and bool(response.json())
