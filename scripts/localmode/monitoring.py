"""Monitoring of the local cluster: Prometheus, its Consul discovery and mtail as supervised programs.

Prometheus scrapes the workers that Consul lists (written for it by consul_file_sd.py, the
"discovery" program: Debian's Prometheus has no consul_sd_configs), Consul's own metrics and
the gateway's, and evaluates the rules in scripts/monitoring/rules. mtail turns nginx's JSON
access log into the gateway's metrics: what clients see. docs/OBSERVABILITY.md. Their files are written into
RUN_DIR/prometheus from the versioned ones in scripts/monitoring; the one rule that belongs to
this cluster alone (how many workers it is meant to run) is rewritten on every up and scale.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from scripts.localmode.config import REPO_ROOT, SERVICE_NAME, ClusterConfig
from scripts.localmode.programs import Program
from scripts.monitoring import prometheus_conf
from scripts.secured.consul_tls import ConsulTls

if TYPE_CHECKING:
    from scripts.localcluster import LocalCluster

MONITORING_DIR = REPO_ROOT / "scripts" / "monitoring"
MTAIL_PRIORITY = 25  # after nginx, whose access log it reads
DISCOVERY_PRIORITY = 35
PROMETHEUS_PRIORITY = 40  # after Consul and the gateway, stopped right after the workers
PROGRAMS = ("mtail", "discovery", "prometheus")
ROLE = "prometheus"  # its read-only Consul token in secured mode (scripts/securemode.py)
START_SECONDS = 30


def prometheus_dir(config: ClusterConfig) -> Path:
    return config.run_dir / "prometheus"


def cluster_rules_dir(config: ClusterConfig) -> Path:
    return prometheus_dir(config) / "rules"


def targets_dir(config: ClusterConfig) -> Path:
    return prometheus_dir(config) / "targets"


def access_log(config: ClusterConfig) -> Path:
    return config.run_dir / "nginx" / "access.log"


def render_prometheus_conf(config: ClusterConfig, token_file: Path | None, consul_tls: ConsulTls | None = None) -> str:
    """scripts/monitoring/prometheus.yml.tmpl filled for this cluster (consul_tls: secure mode's HTTPS API)."""
    return prometheus_conf.render(
        scrape_interval=config.scrape_interval,
        evaluation_interval=config.evaluation_interval,
        sd_refresh=config.sd_refresh,
        consul=f"127.0.0.1:{config.consul_http_port}",
        gateway_metrics=f"127.0.0.1:{config.mtail_port}",
        prometheus=f"127.0.0.1:{config.prometheus_port}",
        rules=MONITORING_DIR / "rules",
        cluster_rules=cluster_rules_dir(config),
        targets=targets_dir(config),
        token_file=token_file,
        consul_https=consul_tls is not None,
        consul_ca_file=consul_tls.ca_file if consul_tls else None,
    )


def write_prometheus_conf(config: ClusterConfig, token_file: Path | None, consul_tls: ConsulTls | None = None) -> Path:
    path = prometheus_dir(config) / "prometheus.yml"
    cluster_rules_dir(config).mkdir(parents=True, exist_ok=True)
    targets_dir(config).mkdir(parents=True, exist_ok=True)  # Prometheus watches it from its start
    path.write_text(render_prometheus_conf(config, token_file, consul_tls))
    if not (cluster_rules_dir(config) / "wanted.yml").exists():
        write_wanted(config, 0)
    return path


def write_wanted(config: ClusterConfig, count: int) -> None:
    """The number of workers this cluster is meant to run, as the rule ner:worker_instances:wanted."""
    prometheus_conf.write_wanted(cluster_rules_dir(config), count)


def prometheus_program(config: ClusterConfig) -> Program:
    """Prometheus in the foreground; /-/reload rereads its files (a new worker count)."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    prefix = prometheus_dir(config)
    argv = [
        binary,
        f"--config.file={prefix / 'prometheus.yml'}",
        f"--storage.tsdb.path={prefix / 'data'}",
        f"--web.listen-address=127.0.0.1:{config.prometheus_port}",
        "--web.enable-lifecycle",
        "--log.format=json",
    ]
    return Program(
        name="prometheus",
        argv=argv,
        priority=PROMETHEUS_PRIORITY,
        stop_signal="TERM",
        stop_wait_seconds=15,
        ports=(config.prometheus_port,),
    )


def discovery_program(
    config: ClusterConfig, token_file: Path | None, consul_env: dict[str, str] | None = None
) -> Program:
    """consul_file_sd.py: Consul's ner-worker instances as Prometheus' target file (consul_env: HTTPS, CA)."""
    argv = [
        str(config.python),
        str(MONITORING_DIR / "consul_file_sd.py"),
        "--consul",
        f"127.0.0.1:{config.consul_http_port}",
        "--service",
        SERVICE_NAME,
        "--out",
        str(targets_dir(config) / f"{SERVICE_NAME}.json"),
    ]
    return Program(
        name="discovery",
        argv=argv,
        priority=DISCOVERY_PRIORITY,
        stop_signal="TERM",
        stop_wait_seconds=5,
        token_file=token_file,
        env=dict(consul_env or {}),
    )


def mtail_program(config: ClusterConfig) -> Program:
    """mtail reading nginx's access log from its end, serving the gateway's metrics."""
    binary = shutil.which("mtail") or "/usr/bin/mtail"
    argv = [
        binary,
        "--progs",
        str(MONITORING_DIR / "mtail"),
        "--logs",
        str(access_log(config)),
        "--address",
        "127.0.0.1",
        "--port",
        str(config.mtail_port),
        "--emit_prog_label=false",
        "--logtostderr",
    ]
    return Program(
        name="mtail",
        argv=argv,
        priority=MTAIL_PRIORITY,
        stop_signal="TERM",
        stop_wait_seconds=5,
        ports=(config.mtail_port,),
    )


def port_of(config: ClusterConfig, name: str) -> int:
    return {"prometheus": config.prometheus_port, "mtail": config.mtail_port}.get(name, 0)


def ports(cluster: "LocalCluster") -> list[int]:
    """The ports of the monitoring programs this run directory has (none when it runs without them)."""
    configured = set(cluster.supervisor.configured())
    return [port_of(cluster.config, name) for name in PROGRAMS if name in configured and port_of(cluster.config, name)]


def ready(config: ClusterConfig) -> bool:
    try:
        return requests.get(f"{config.prometheus_url}/-/ready", timeout=2).ok
    except requests.RequestException:
        return False


def _mtail_up(config: ClusterConfig) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{config.mtail_port}/metrics", timeout=2).ok
    except requests.RequestException:
        return False


def reload(config: ClusterConfig) -> None:
    """Have Prometheus reread its configuration and rules; a Prometheus that is down reads them at start."""
    try:
        requests.post(f"{config.prometheus_url}/-/reload", timeout=5)
    except requests.RequestException:
        pass


def start(cluster: "LocalCluster") -> None:
    """mtail, the discovery, then Prometheus with this cluster's configuration; each only if missing.

    A port held by a process the cluster did not start (another Prometheus on 9090) leaves
    monitoring out with a message: the service itself does not depend on it.
    """
    cfg = cluster.config
    try:
        cluster._check_port(cfg.mtail_port, "NER_MTAIL_PORT")
        cluster._check_port(cfg.prometheus_port, "NER_PROMETHEUS_PORT")
    except RuntimeError as error:
        cluster.say(f"monitoring: left out: {error}")
        return
    access_log(cfg).touch()  # mtail follows the files that exist when it starts
    cluster._ensure("mtail", lambda: mtail_program(cfg))
    cluster._wait_program("mtail", lambda: _mtail_up(cfg), START_SECONDS, "mtail")
    cluster._ensure(
        "discovery", lambda: discovery_program(cfg, cluster.token_file(ROLE), cluster.mode.consul_client_env())
    )
    write_prometheus_conf(cfg, cluster.token_file(ROLE), cluster.mode.consul_tls())
    if not cluster._ensure("prometheus", lambda: prometheus_program(cfg)):
        reload(cfg)
    took = cluster._wait_program("prometheus", lambda: ready(cfg), START_SECONDS, "Prometheus ready")
    cluster.say(f"monitoring: Prometheus ready in {took:.1f}s at {cfg.prometheus_url}, gateway metrics by mtail")


def set_wanted(cluster: "LocalCluster", count: int) -> None:
    """Record how many workers the cluster is meant to run, where Prometheus runs for it."""
    if "prometheus" not in cluster.supervisor.configured():
        return
    write_wanted(cluster.config, count)
    reload(cluster.config)
