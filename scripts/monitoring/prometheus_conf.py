#!/usr/bin/env python3
"""prometheus.yml.tmpl filled in, and the cluster's own rule (its wanted worker count), for any Prometheus.

Local mode calls render() and write_wanted() (scripts/localmode/monitoring.py); a container runs
this file (prometheus-entrypoint.sh), its values from the environment:

    python3 prometheus_conf.py --out /prometheus/prometheus.yml      # NER_PROMETHEUS_*, CONSUL_HTTP_ADDR, CONSUL_CACERT

Standard library only, like consul_file_sd.py beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "prometheus.yml.tmpl"
_DURATION = re.compile(r"([1-9][0-9]*)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> float:
    match = _DURATION.fullmatch(duration)
    if not match:
        raise ValueError(f"{duration!r}: expected a duration such as 500ms, 10s or 1m")
    return int(match[1]) * _UNITS[match[2]]


def authorization(token_file: Path | None) -> str:
    """An `authorization:` block naming the token file (never the token), or nothing."""
    if token_file is None:
        return ""
    return f"    authorization:\n      credentials_file: {token_file}"


def consul_tls(https: bool, ca_file: Path | None) -> str:
    """`scheme: https` and a `tls_config:` naming the CA Consul's certificate must chain to (else the
    system's CAs), or nothing for plain HTTP."""
    if not https:
        return ""
    return "    scheme: https" + (f"\n    tls_config:\n      ca_file: {ca_file}" if ca_file else "")


def split_consul_addr(addr: str, ssl_on: bool = False) -> tuple[str, bool]:
    """host:port and whether it speaks HTTPS, from host:port or http(s)://host:port (ssl_on: CONSUL_HTTP_SSL)."""
    scheme, sep, rest = addr.partition("://")
    return (rest if sep else addr).rstrip("/"), ssl_on or (bool(sep) and scheme.lower() == "https")


def render(
    *,
    scrape_interval: str,
    evaluation_interval: str,
    sd_refresh: str,
    consul: str,
    gateway_metrics: str,
    prometheus: str,
    rules: Path,
    cluster_rules: Path,
    targets: Path,
    token_file: Path | None,
    consul_https: bool = False,
    consul_ca_file: Path | None = None,
    template: Path = TEMPLATE,
) -> str:
    """The template filled in; a scrape may take at most its interval (and 10 s)."""
    for duration in (scrape_interval, evaluation_interval, sd_refresh):
        seconds(duration)
    timeout = min(seconds(scrape_interval), 10.0)
    return string.Template(template.read_text()).substitute(
        SCRAPE_INTERVAL=scrape_interval,
        SCRAPE_TIMEOUT=f"{timeout:g}s",
        EVALUATION_INTERVAL=evaluation_interval,
        SD_REFRESH=sd_refresh,
        TARGETS=str(targets),
        CONSUL=consul,
        GATEWAY_METRICS=gateway_metrics,
        PROMETHEUS=prometheus,
        RULES=str(rules),
        CLUSTER_RULES=str(cluster_rules),
        CONSUL_AUTH=authorization(token_file),
        CONSUL_TLS=consul_tls(consul_https, consul_ca_file),
    )


def write_wanted(cluster_rules: Path, count: int) -> Path:
    """The number of workers the cluster is meant to run, as the rule ner:worker_instances:wanted."""
    path = cluster_rules / "wanted.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Written by whoever runs the cluster: `make up` and `make scale` in local mode.\n"
        "groups:\n  - name: ner-cluster-wanted\n    rules:\n"
        f"      - record: ner:worker_instances:wanted\n        expr: vector({int(count)})\n"
    )
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--data", type=Path, default=Path("/prometheus"), help="where the target file and the cluster's rules go"
    )
    args = parser.parse_args(argv)
    env = os.environ
    token = Path(env["NER_PROMETHEUS_TOKEN_FILE"]) if env.get("NER_PROMETHEUS_TOKEN_FILE") else None
    cluster_rules = args.data / "rules"
    cluster_rules.mkdir(parents=True, exist_ok=True)
    (args.data / "targets").mkdir(parents=True, exist_ok=True)  # Prometheus watches it from its start
    if env.get("NER_WORKERS_WANTED", "").strip():
        write_wanted(cluster_rules, int(env["NER_WORKERS_WANTED"]))
    gateway = env.get("NER_GATEWAY_METRICS", "").strip()
    ssl_on = env.get("CONSUL_HTTP_SSL", "").strip().lower() in ("1", "t", "true", "yes", "on")
    consul, https = split_consul_addr(env.get("CONSUL_HTTP_ADDR", "consul:8500"), ssl_on)
    ca_file = Path(env["CONSUL_CACERT"]) if env.get("CONSUL_CACERT") else None
    args.out.write_text(
        render(
            scrape_interval=env.get("NER_PROMETHEUS_SCRAPE_INTERVAL") or "10s",
            evaluation_interval=env.get("NER_PROMETHEUS_EVALUATION_INTERVAL") or "10s",
            sd_refresh=env.get("NER_PROMETHEUS_SD_REFRESH") or "5s",
            consul=consul,
            gateway_metrics=gateway,
            prometheus="127.0.0.1:9090",
            rules=HERE / "rules",
            cluster_rules=cluster_rules,
            targets=args.data / "targets",
            token_file=token,
            consul_https=https,
            consul_ca_file=ca_file,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
