"""HTTPS vs plain HTTP through the gateway, side by side in one run, and what a new TLS connection costs.

    .venv/bin/python -m bench.bench_tls              # the figures, about 2 minutes
    .venv/bin/python -m bench.bench_tls --dry-run    # tiny sizes: proves it runs

One local cluster (2 workers, the shipped default model unless NER_MODEL_DIR says otherwise,
gateway rate limit and monitoring off) serves both: plain HTTP on its port, HTTPS (TLS 1.3,
the generated ECDSA P-256 certificate) on the other. Two parts, each in interleaved rounds
(HTTP, HTTPS, HTTPS, HTTP, ...) so both see the same machine:

  keep-alive   closed loops of never repeated texts over long-lived HTTP/1.1 connections:
               requests/s, p50 and p95 latency, and nginx's CPU per request
  new conn.    one request per new connection, one at a time: plain TCP, a full TLS 1.3
               handshake, a TLS 1.3 handshake resuming the previous session, and a full TLS
               1.2 one; the connect+handshake time alone and the whole request, and nginx's
               CPU per connection

The load generator runs on the same 2 cores as nginx and the workers; its CPU is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import TEXT, percentile
from scripts.localcluster import LocalCluster
from worker.config import DEFAULT_MODEL_DIR

SHIPPED_MODEL = DEFAULT_MODEL_DIR
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    rounds: int  # per protocol, keep-alive part
    seconds: float  # per round
    threads: int
    connections: int  # per kind and round, new-connection part
    conn_rounds: int


FULL = Plan(rounds=4, seconds=6.0, threads=4, connections=100, conn_rounds=4)
DRY = Plan(rounds=1, seconds=1.0, threads=2, connections=5, conn_rounds=1)


@dataclass
class Tally:
    """Latencies (s), failures, generator CPU (s) and nginx CPU (s) of one kind, over its rounds."""

    latencies: list[float] = field(default_factory=list)
    handshakes: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    nginx_cpu: float = 0.0
    reused: int = 0


def nginx_cpu_seconds(cluster: LocalCluster) -> float:
    """User + system CPU of nginx's worker processes (children of the master in nginx.pid)."""
    master = int((cluster.nginx_dir() / "nginx.pid").read_text())
    total = 0
    for task in Path(f"/proc/{master}/task").iterdir():
        for child in (task / "children").read_text().split():
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def tls_context(ca: Path, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = context.maximum_version = version
    return context


def body(kind: str, sequence: int) -> bytes:
    """A text never sent before: the workers' result cache must not answer for the model."""
    return json.dumps({"text": f"{kind}-{sequence}-{time.monotonic_ns()}：{TEXT['text']}"}, ensure_ascii=False).encode()


def post(conn: http.client.HTTPConnection, payload: bytes) -> int:
    conn.request("POST", "/v1/ner", body=payload, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def keep_alive_round(port: int, context: ssl.SSLContext | None, plan: Plan, tally: Tally, kind: str) -> None:
    """plan.threads closed loops, each on one connection, for plan.seconds."""
    lock = threading.Lock()
    deadline = time.monotonic() + plan.seconds

    def loop(index: int) -> None:
        cpu = time.thread_time()
        if context is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        else:
            conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
        latencies, failures, sequence = [], 0, 0
        while time.monotonic() < deadline:
            sequence += 1
            sent = time.perf_counter()
            try:
                ok = post(conn, body(f"{kind}{index}", sequence)) == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            latencies.append(time.perf_counter() - sent) if ok else None
            failures += not ok
        conn.close()
        with lock:
            tally.latencies += latencies
            tally.failures += failures
            tally.client_cpu += time.thread_time() - cpu

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(plan.threads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds += time.monotonic() - started


def new_connection_round(port: int, context: ssl.SSLContext | None, resume: bool, count: int, tally: Tally) -> None:
    """count requests, each on a new connection; resume: offer the previous connection's TLS session."""
    session: ssl.SSLSession | None = None
    cpu = time.thread_time()
    for sequence in range(count):
        started = time.perf_counter()
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = raw
            if context is not None:
                sock = context.wrap_socket(raw, server_hostname="localhost", session=session if resume else None)
                tally.reused += sock.session_reused
            handshaken = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.sock = sock
            ok = post(conn, body("conn", sequence)) == 200
            if context is not None:
                session = sock.session  # a TLS 1.3 ticket arrives after the handshake, with the answer
            conn.close()
        except (OSError, http.client.HTTPException):
            tally.failures += 1
            continue
        done = time.perf_counter()
        tally.handshakes.append(handshaken - started)
        tally.latencies.append(done - started) if ok else None
        tally.failures += not ok
    tally.client_cpu += time.thread_time() - cpu


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def run(cluster: LocalCluster, plan: Plan) -> dict[str, dict[str, Tally]]:
    http_port, tls_port = cluster.config.gateway_port, cluster.config.tls_port
    ca = cluster.config.tls_dir / "ca.pem"
    keep = {"HTTP": Tally(), "HTTPS (TLS 1.3)": Tally()}
    contexts = {"HTTP": (http_port, None), "HTTPS (TLS 1.3)": (tls_port, tls_context(ca))}
    # Warm-up: the workers' first requests and nginx's keep-alive pool to them.
    keep_alive_round(http_port, None, Plan(1, min(2.0, plan.seconds), plan.threads, 0, 0), Tally(), "warm")
    for index in range(plan.rounds):
        order = list(keep) if index % 2 == 0 else list(reversed(keep))
        for name in order:
            port, context = contexts[name]
            before = nginx_cpu_seconds(cluster)
            keep_alive_round(port, context, plan, keep[name], name[:4])
            keep[name].nginx_cpu += nginx_cpu_seconds(cluster) - before
    fresh = {
        "TCP (plain HTTP)": (http_port, None, False),
        "TLS 1.3 full handshake": (tls_port, tls_context(ca), False),
        "TLS 1.3 resumed": (tls_port, tls_context(ca), True),
        "TLS 1.2 full handshake": (tls_port, tls_context(ca, ssl.TLSVersion.TLSv1_2), False),
    }
    conn = {name: Tally() for name in fresh}
    for index in range(plan.conn_rounds):
        order = list(fresh) if index % 2 == 0 else list(reversed(fresh))
        for name in order:
            port, context, resume = fresh[name]
            before = nginx_cpu_seconds(cluster)
            new_connection_round(port, context, resume, plan.connections, conn[name])
            conn[name].nginx_cpu += nginx_cpu_seconds(cluster) - before
    return {"keep_alive": keep, "new_connection": conn}


def report(results: dict[str, dict[str, Tally]], load_before: float) -> str:
    lines = [
        "| keep-alive, closed loops | requests/s | p50 ms | p95 ms | failed | nginx CPU ms/request | generator CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tally in results["keep_alive"].items():
        count = len(tally.latencies)
        lines.append(
            f"| {name} | {count / tally.seconds:.0f} | {ms(percentile(tally.latencies, 50))} | "
            f"{ms(percentile(tally.latencies, 95))} | {tally.failures} | "
            f"{tally.nginx_cpu / max(count, 1) * 1000:.3f} | {tally.client_cpu:.1f} |"
        )
    lines += [
        "",
        "| new connection per request | connect+handshake p50 ms | p95 ms | whole request p50 ms | p95 ms | "
        "resumed | failed | nginx CPU ms/connection |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, tally in results["new_connection"].items():
        count = len(tally.latencies)
        lines.append(
            f"| {name} | {ms(percentile(tally.handshakes, 50))} | {ms(percentile(tally.handshakes, 95))} | "
            f"{ms(percentile(tally.latencies, 50))} | {ms(percentile(tally.latencies, 95))} | "
            f"{tally.reused}/{count} | {tally.failures} | {tally.nginx_cpu / max(count, 1) * 1000:.3f} |"
        )
    load_after = os.getloadavg()[0]
    shared = " (the machine was shared: load average above 2)" if max(load_before, load_after) > 2 else ""
    lines.append(
        f"\n{os.cpu_count()} cores; load average {load_before:.2f} before, {load_after:.2f} after{shared}; "
        "nginx CPU from /proc at 10 ms resolution, summed over the rounds"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, to prove the script runs")
    args = parser.parse_args(argv)
    plan = DRY if args.dry_run else FULL
    os.environ.setdefault("NER_MODEL_DIR", str(SHIPPED_MODEL))
    os.environ.update({"NER_GATEWAY_RATE": "off", "NER_MONITOR": "0", "NER_GATEWAY_TLS": "1"})
    from bench.localrun import local_cluster

    load_before = os.getloadavg()[0]
    with local_cluster(workers=2) as cluster:
        print(f"cluster up: {cluster.config.gateway_url} and {cluster.config.gateway_tls_url}", flush=True)
        results = run(cluster, plan)
    print(report(results, load_before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
