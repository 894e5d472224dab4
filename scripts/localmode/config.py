"""Where the local cluster lives and which ports it uses: read once from NER_* variables."""

from __future__ import annotations

import os
import re
import shutil
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from registrar.config import SERVICE_NAME, parse_flag
from scripts.ports import WORKER_PORT_BLOCK, free_port, free_port_block
from scripts.secured.ratelimit import RateLimit
from worker.config import DEFAULT_MODEL_DIR

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
    # HTTPS at the gateway (docs/SECURITY.md), on its own port beside plain HTTP: NER_GATEWAY_TLS=0
    # turns it off; NER_GATEWAY_TLS_LISTEN; NER_TLS_CERT + NER_TLS_KEY: the operator's chain and key,
    # else a local CA and a certificate for tls_names (NER_TLS_NAMES) under RUN_DIR/tls.
    tls: bool = True
    tls_host: str = "127.0.0.1"
    tls_port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

    def rate_limit(self, secure: bool) -> RateLimit:
        return RateLimit.from_env(
            {"NER_GATEWAY_RATE": self.gateway_rate, "NER_GATEWAY_BURST": self.gateway_burst}, secure
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def tls_dir(self) -> Path:
        """The generated CA and gateway certificate (0700 directory, 0600 files)."""
        return self.run_dir / "tls"

    @property
    def gateway_tls_url(self) -> str:
        """The HTTPS address clients use; a wildcard listen is reached as localhost (a name of the certificate)."""
        host = "localhost" if self.tls_host in ("0.0.0.0", "::", "[::]") else self.tls_host
        return f"https://{host}:{self.tls_port}"

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


def _tls_files(environ: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    """The operator's certificate chain and key: both or neither, and both readable."""
    cert, key = (environ.get(name, "").strip() for name in ("NER_TLS_CERT", "NER_TLS_KEY"))
    if not cert and not key:
        return None, None
    if not (cert and key):
        raise ValueError("NER_TLS_CERT and NER_TLS_KEY go together: set both or neither")
    paths = Path(cert).resolve(), Path(key).resolve()
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path}: no such certificate or key file")
    return paths


def _tls_names(environ: Mapping[str, str], tls_host: str) -> tuple[str, ...]:
    """Names of the generated certificate: NER_TLS_NAMES, else loopback, this host's name and the listen address."""
    given = environ.get("NER_TLS_NAMES", "").strip()
    if given:
        return tuple(name.strip() for name in given.split(",") if name.strip())
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname().lower()]
    if tls_host not in ("0.0.0.0", "::", "[::]"):
        names.append(tls_host)
    return tuple(dict.fromkeys(name for name in names if name))


def load_config(environ: Mapping[str, str] = os.environ) -> ClusterConfig:
    """Read the local cluster's settings from the environment (all optional)."""
    gateway_host, gateway_port = _split_listen(environ.get("NER_GATEWAY_LISTEN", "127.0.0.1:8080"))
    tls_host, tls_port = _split_listen(environ.get("NER_GATEWAY_TLS_LISTEN", "127.0.0.1:8443"))
    tls_cert, tls_key = _tls_files(environ)
    nginx = environ.get("NER_NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
    config = ClusterConfig(
        run_dir=Path(environ.get("NER_RUN_DIR", REPO_ROOT / ".run")).resolve(),
        gateway_host=gateway_host,
        gateway_port=gateway_port,
        consul_http_port=int(environ.get("NER_CONSUL_HTTP_PORT", "8500")),
        worker_base_port=int(environ.get("NER_WORKER_BASE_PORT", "8101")),
        model_dir=Path(environ.get("NER_MODEL_DIR", DEFAULT_MODEL_DIR)).resolve(),
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
        tls=parse_flag("NER_GATEWAY_TLS", environ.get("NER_GATEWAY_TLS", "")) is not False,
        tls_host=tls_host,
        tls_port=tls_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_names=_tls_names(environ, tls_host),
    )
    config.rate_limit(bool(config.secure))  # a bad NER_GATEWAY_RATE/BURST fails here, before anything starts
    return config


def on_free_ports(config: ClusterConfig) -> ClusterConfig:
    """The same cluster on free loopback ports, so it never collides with a running `make up` cluster."""
    return replace(
        config,
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        tls_host="127.0.0.1",
        tls_port=free_port(),
        consul_http_port=free_port(),
        worker_base_port=free_port_block(WORKER_PORT_BLOCK),
        prometheus_port=free_port(),
        mtail_port=free_port(),
    )
