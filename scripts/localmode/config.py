"""Where the local cluster lives and which ports it uses: read once from NER_* variables."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from registrar.config import SERVICE_NAME, parse_flag
from scripts.ports import WORKER_PORT_BLOCK, free_port, free_port_block
from scripts.secured.ratelimit import RateLimit

__all__ = ["REPO_ROOT", "SERVICE_NAME", "ClusterConfig", "load_config", "on_free_ports"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClusterConfig:
    """Where the local cluster lives and which ports it uses."""

    run_dir: Path
    gateway_host: str
    gateway_port: int
    consul_http_port: int
    worker_base_port: int
    model_dir: Path
    python: Path
    consul_bin: Path
    nginx_bin: str
    drain_seconds: float
    # Secured mode (docs/SECURITY.md): True/False from NER_SECURE=1/0; None (unset) = keep the
    # run directory's recorded mode (normal for a new one). Only acted on when `up` starts Consul.
    secure: bool | None = None
    # Gateway rate limit overrides ("" = the mode's default): NER_GATEWAY_RATE / NER_GATEWAY_BURST.
    gateway_rate: str = ""
    gateway_burst: str = ""
    # Monitoring (scripts/localmode/monitoring.py): NER_MONITOR=0 leaves Prometheus and mtail out.
    monitor: bool = True
    prometheus_port: int = 9090
    mtail_port: int = 3903
    # Prometheus' intervals (NER_PROMETHEUS_SCRAPE_INTERVAL, _EVALUATION_INTERVAL, _SD_REFRESH).
    scrape_interval: str = "10s"
    evaluation_interval: str = "10s"
    sd_refresh: str = "5s"

    def rate_limit(self, secure: bool) -> RateLimit:
        return RateLimit.from_env(
            {"NER_GATEWAY_RATE": self.gateway_rate, "NER_GATEWAY_BURST": self.gateway_burst}, secure
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def consul_url(self) -> str:
        return f"http://127.0.0.1:{self.consul_http_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


_DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h)")


def _duration(environ: Mapping[str, str], name: str, default: str) -> str:
    """A Prometheus duration such as 10s; a bad one fails before anything starts."""
    value = environ.get(name, "").strip() or default
    if not _DURATION.fullmatch(value):
        raise ValueError(f"{name}={value!r}: expected a duration such as 500ms, 10s or 1m")
    return value


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def load_config(environ: Mapping[str, str] = os.environ) -> ClusterConfig:
    """Read the local cluster's settings from the environment (all optional)."""
    gateway_host, gateway_port = _split_listen(environ.get("NER_GATEWAY_LISTEN", "127.0.0.1:8080"))
    nginx = environ.get("NER_NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
    config = ClusterConfig(
        run_dir=Path(environ.get("NER_RUN_DIR", REPO_ROOT / ".run")).resolve(),
        gateway_host=gateway_host,
        gateway_port=gateway_port,
        consul_http_port=int(environ.get("NER_CONSUL_HTTP_PORT", "8500")),
        worker_base_port=int(environ.get("NER_WORKER_BASE_PORT", "8101")),
        model_dir=Path(environ.get("NER_MODEL_DIR", REPO_ROOT / "models/raner-msra-lstm")).resolve(),
        python=Path(environ.get("NER_PYTHON", REPO_ROOT / ".venv/bin/python")),
        consul_bin=Path(environ.get("NER_CONSUL_BIN", REPO_ROOT / ".local/bin/consul")),
        nginx_bin=nginx,
        drain_seconds=float(environ.get("NER_DRAIN_SECONDS", "3")),
        secure=parse_flag("NER_SECURE", environ.get("NER_SECURE", "")),
        gateway_rate=environ.get("NER_GATEWAY_RATE", "").strip(),
        gateway_burst=environ.get("NER_GATEWAY_BURST", "").strip(),
        monitor=parse_flag("NER_MONITOR", environ.get("NER_MONITOR", "")) is not False,
        prometheus_port=int(environ.get("NER_PROMETHEUS_PORT", "9090")),
        mtail_port=int(environ.get("NER_MTAIL_PORT", "3903")),
        scrape_interval=_duration(environ, "NER_PROMETHEUS_SCRAPE_INTERVAL", "10s"),
        evaluation_interval=_duration(environ, "NER_PROMETHEUS_EVALUATION_INTERVAL", "10s"),
        sd_refresh=_duration(environ, "NER_PROMETHEUS_SD_REFRESH", "5s"),
    )
    config.rate_limit(bool(config.secure))  # a bad NER_GATEWAY_RATE/BURST fails here, before anything starts
    return config


def on_free_ports(config: ClusterConfig) -> ClusterConfig:
    """The same cluster on free loopback ports, so it never collides with a running `make up` cluster."""
    return replace(
        config,
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        consul_http_port=free_port(),
        worker_base_port=free_port_block(WORKER_PORT_BLOCK),
        prometheus_port=free_port(),
        mtail_port=free_port(),
    )
