"""A throw-away local cluster for benchmarks: free ports and its own run directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import requests

from scripts.localcluster import REPO_ROOT, SERVICE_NAME, LocalCluster, load_config, on_free_ports

_ADDR_PORT = re.compile(r"[0-9.]+:(\d+)")
DEFAULT_MODEL = REPO_ROOT / ".local" / "models" / "raner-tiny-random"


@contextmanager
def local_cluster(workers: int, drain_seconds: float = 2.0, quiet: bool = True) -> Iterator[LocalCluster]:
    """Start Consul, `workers` workers, renderer and nginx; stop and remove everything afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="ner-bench-"))
    run_dir.chmod(0o755)  # nginx's unprivileged workers must enter it
    config = replace(
        on_free_ports(load_config(os.environ)),
        run_dir=run_dir,
        drain_seconds=drain_seconds,
        model_dir=Path(os.environ.get("NER_MODEL_DIR", DEFAULT_MODEL)).resolve(),
    )
    cluster = LocalCluster(config, say=(lambda message: None) if quiet else print)
    try:
        cluster.up(workers)
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(run_dir, ignore_errors=True)


def instance_id_on_port(cluster: LocalCluster, port: int) -> str | None:
    """The Consul service ID of the worker listening on a local port, passing or not."""
    response = requests.get(f"{cluster.config.consul_url}/v1/health/service/{SERVICE_NAME}", timeout=5)
    for entry in response.json():
        if entry["Service"]["Port"] == port:
            return entry["Service"]["ID"]
    return None


def in_upstream(cluster: LocalCluster, port: int) -> bool:
    """Whether the rendered upstream lists a server on this port."""
    text = (cluster.nginx_dir() / "upstream.conf").read_text()
    return f":{port} " in text or f":{port};" in text


def attempted_ports(cluster: LocalCluster) -> dict[str, list[int]]:
    """Request ID -> upstream ports nginx tried for it, from the gateway's JSON access log."""
    tried: dict[str, list[int]] = {}
    with open(cluster.nginx_dir() / "access.log", errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            ports = [int(port) for port in _ADDR_PORT.findall(entry.get("upstream_addr", ""))]
            tried[entry.get("request_id", "")] = ports
    return tried
