#!/usr/bin/env python3
"""Consul's instances of a service as a Prometheus file_sd target file, kept current by blocking queries.

Debian's Prometheus 2.42 is built without consul_sd_configs ("Disable Consul SD until its
Debian package is back in shape", its changelog), so this does what that discoverer does: it
asks Consul's health API for every instance of the service with a blocking query and, on each
change, rewrites the file atomically; Prometheus notices the new file at once (inotify). Each
target carries the labels consul_sd_configs would give it (__meta_consul_service_id,
__meta_consul_node, __meta_consul_health, __meta_consul_service_metadata_<key>, ...), so the
relabelling in prometheus.yml.tmpl is the one a Prometheus with Consul SD would use.

    python3 consul_file_sd.py --consul 127.0.0.1:8500 --service ner-worker --out targets/ner-worker.json

Standard library only, so it runs beside Prometheus wherever python3 is. In secured mode the
token comes from CONSUL_HTTP_TOKEN (read-only: service and node read), and Consul speaks HTTPS:
an https:// address or CONSUL_HTTP_SSL=true, its certificate verified against CONSUL_CACERT
(--ca-file), with CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY if Consul asks for one. Logs one JSON object per
line on stderr. When Consul cannot be reached the last file stays: Prometheus keeps scraping
what it last knew, as consul_sd_configs does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

RETRY_SECONDS = 1.0
MIN_QUERY_SECONDS = 0.1  # between two queries, should Consul ever answer a blocking one at once
_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def log(level: str, event: str, **fields: Any) -> None:
    """One JSON line on stderr, in the shape every component of the cluster logs."""
    line = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "logger": "monitoring.consul_file_sd",
        "event": event,
        **fields,
    }
    print(json.dumps(line, ensure_ascii=False), file=sys.stderr, flush=True)


def aggregated_status(checks: Iterable[dict]) -> str:
    """Consul's aggregate of an instance's checks (node and service): maintenance > critical > warning > passing."""
    statuses = [check.get("Status", "") for check in checks]
    ids = [check.get("CheckID", "") for check in checks]
    if any(check_id.startswith(("_node_maintenance", "_service_maintenance")) for check_id in ids):
        return "maintenance"
    for status in ("critical", "warning"):
        if status in statuses:
            return status
    return "passing"


def target_group(entry: dict) -> dict:
    """One instance as a file_sd target group, labelled as consul_sd_configs labels it."""
    node, service = entry.get("Node") or {}, entry.get("Service") or {}
    address = service.get("Address") or node.get("Address", "")
    host = f"[{address}]" if ":" in address else address
    labels = {
        "__meta_consul_address": node.get("Address", ""),
        "__meta_consul_dc": node.get("Datacenter", ""),
        "__meta_consul_health": aggregated_status(entry.get("Checks") or []),
        "__meta_consul_node": node.get("Node", ""),
        "__meta_consul_service": service.get("Service", ""),
        "__meta_consul_service_address": service.get("Address", ""),
        "__meta_consul_service_id": service.get("ID", ""),
        "__meta_consul_service_port": str(service.get("Port", "")),
        "__meta_consul_tags": "," + ",".join(service.get("Tags") or []) + ",",
    }
    for key, value in (service.get("Meta") or {}).items():
        labels[f"__meta_consul_service_metadata_{_LABEL_CHARS.sub('_', key)}"] = str(value)
    for key, value in (node.get("Meta") or {}).items():
        labels[f"__meta_consul_metadata_{_LABEL_CHARS.sub('_', key)}"] = str(value)
    return {"targets": [f"{host}:{service.get('Port', 0)}"], "labels": labels}


def target_groups(entries: list[dict]) -> list[dict]:
    """Every instance, in a stable order so that an unchanged Consul gives an unchanged file."""
    groups = [target_group(entry) for entry in entries]
    return sorted(
        groups, key=lambda group: (group["labels"]["__meta_consul_node"], group["labels"]["__meta_consul_service_id"])
    )


def write_atomic(path: Path, text: str) -> bool:
    """Replace the file in one rename (Prometheus never reads half of it); False when unchanged."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def next_index(previous: int, header: str | None) -> int:
    """Consul's blocking-query index rules: a missing, smaller or zero index starts again from 0."""
    try:
        index = int(header or "0")
    except ValueError:
        return 0
    return index if index > 0 and index >= previous else 0


def consul_base(addr: str, ssl_on: bool = False) -> str:
    """The API's base URL from host:port or http(s)://host:port; ssl_on (CONSUL_HTTP_SSL) makes it https."""
    scheme, sep, rest = addr.partition("://")
    host_port = (rest if sep else addr).rstrip("/")
    return f"{'https' if ssl_on or (sep and scheme.lower() == 'https') else 'http'}://{host_port}"


def tls_context(ca_file: str = "", client_cert: str = "", client_key: str = "") -> ssl.SSLContext:
    """Verification against ca_file (else the system's CAs), host names checked, an optional client certificate."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context


def query(
    consul: str, service: str, index: int, wait: str, token: str, context: ssl.SSLContext | None = None
) -> tuple[list[dict], int]:
    """One blocking query of the service's health (every instance, any status): (entries, X-Consul-Index)."""
    params = urllib.parse.urlencode({"index": index, "wait": wait} if index else {})
    url = f"{consul}/v1/health/service/{urllib.parse.quote(service)}" + (f"?{params}" if params else "")
    request = urllib.request.Request(url, headers={"X-Consul-Token": token} if token else {})
    # Consul adds up to 1/16 of the wait as jitter: the socket waits longer than that.
    with urllib.request.urlopen(request, timeout=_seconds(wait) * 1.1 + 10, context=context) as response:
        return json.load(response), next_index(index, response.headers.get("X-Consul-Index"))


def _seconds(duration: str) -> float:
    """Consul's wait: a number of seconds ("30s") or minutes ("5m")."""
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    if not match:
        raise ValueError(f"--wait {duration!r}: expected e.g. 30s or 5m")
    return float(match[1]) * (60 if match[2] == "m" else 1)


def run(consul: str, service: str, out: Path, wait: str, token: str, context: ssl.SSLContext | None = None) -> None:
    """Follow Consul until stopped, rewriting the file on every change of the instance list."""
    index = 0
    while True:
        started = time.monotonic()
        try:
            entries, index = query(consul, service, index, wait, token, context)
        except (OSError, ValueError, urllib.error.URLError) as error:
            log("WARNING", "consul.unreachable", consul=consul, error=str(error), keeping=str(out))
            index = 0
            time.sleep(RETRY_SECONDS)
            continue
        groups = target_groups(entries)
        if write_atomic(out, json.dumps(groups, indent=2, sort_keys=True) + "\n"):
            health = {}
            for group in groups:
                status = group["labels"]["__meta_consul_health"]
                health[status] = health.get(status, 0) + 1
            log("INFO", "targets.written", service=service, file=str(out), targets=len(groups), health=health)
        time.sleep(max(0.0, MIN_QUERY_SECONDS - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--consul",
        default=os.environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500"),
        help="a Consul agent's HTTP API: host:port or https://host:port (CONSUL_HTTP_ADDR, CONSUL_HTTP_SSL)",
    )
    parser.add_argument(
        "--ca-file",
        default=os.environ.get("CONSUL_CACERT", ""),
        help="CA certificate an https Consul's certificate must chain to (CONSUL_CACERT; default: system CAs)",
    )
    parser.add_argument("--service", default="ner-worker")
    parser.add_argument("--out", type=Path, required=True, help="the target file Prometheus reads")
    parser.add_argument("--wait", default="30s", help="how long one blocking query may wait (Consul's wait)")
    args = parser.parse_args(argv)
    _seconds(args.wait)
    ssl_on = os.environ.get("CONSUL_HTTP_SSL", "").strip().lower() in ("1", "t", "true", "yes", "on")
    consul = consul_base(args.consul, ssl_on)
    context = None
    if consul.startswith("https://"):
        context = tls_context(
            args.ca_file, os.environ.get("CONSUL_CLIENT_CERT", ""), os.environ.get("CONSUL_CLIENT_KEY", "")
        )
    log("INFO", "started", consul=consul, service=args.service, file=str(args.out), ca_file=args.ca_file)
    try:
        run(consul, args.service, args.out, args.wait, os.environ.get("CONSUL_HTTP_TOKEN", ""), context)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
