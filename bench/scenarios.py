"""Chaos events, one at a time, against a running local cluster under steady load.

Each event function injects one failure, waits until the cluster has dealt with it, and
returns when the "during" window ends plus the figures it measured. `run_scenario` wraps
it in before/after windows of steady load and joins the client's view with the gateway's
access log (which worker each request was tried on).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

import requests

from bench.loadgen import PacedLoad, Record
from bench.localrun import attempted_ports, in_upstream
from scripts.localcluster import LocalCluster, Proc, wait_for

BEFORE_S = 4.0
AFTER_S = 4.0


@dataclass
class Event:
    """What an event reports: end of its window, figures, ports it took away, workers it added."""

    ended_at: float
    figures: dict[str, float | str] = field(default_factory=dict)
    victim_ports: list[int] = field(default_factory=list)
    newcomers: dict[str, float] = field(default_factory=dict)  # Consul ID -> passing since


@dataclass
class ScenarioRun:
    """One scenario's load records and event timings."""

    name: str
    records: list[Record]
    started_at: float
    event_at: float
    event: Event
    generator_cpu_s: float
    wall_s: float
    tried: dict[str, list[int]]


def run_scenario(
    name: str,
    cluster: LocalCluster,
    rate: float,
    inject: Callable[[LocalCluster], Event],
    threads: int = 3,
    timeout: float = 10.0,
) -> ScenarioRun:
    """Steady load for BEFORE_S, the event, AFTER_S more; then the records and figures."""
    load = PacedLoad(
        f"{cluster.config.gateway_url}/v1/ner", rate=rate, threads=threads, timeout=timeout, max_seconds=300
    ).start()
    time.sleep(BEFORE_S)
    event_at = time.monotonic()
    try:
        event = inject(cluster)
        time.sleep(max(0.0, event.ended_at + AFTER_S - time.monotonic()))
    finally:
        load.stop()
    return ScenarioRun(
        name,
        list(load.records),
        load.started_at,
        event_at,
        event,
        load.cpu_seconds,
        load.stopped_at - load.started_at,
        attempted_ports(cluster),
    )


def _victim(cluster: LocalCluster, last: bool = True) -> Proc:
    workers = list(cluster.workers().values())
    return workers[-1] if last else workers[0]


def _wait_traffic(cluster: LocalCluster, port: int, timeout: float = 60) -> tuple[str, float]:
    """Wait for a new worker to pass in Consul; its ID and when it passed."""

    def passing_id() -> str | None:
        return next((s["ID"] for s in cluster.passing() if s["Port"] == port), None)

    wait_for(lambda: passing_id() is not None, timeout, f"worker on port {port} passing", interval=0.05)
    return passing_id() or "", time.monotonic()


def _start_and_wait(cluster: LocalCluster) -> tuple[Proc, str, float]:
    proc = cluster.start_worker()
    worker_id, passing_at = _wait_traffic(cluster, proc.port)
    return proc, worker_id, passing_at


def kill9(cluster: LocalCluster) -> Event:
    victim = _victim(cluster)
    t0 = time.monotonic()
    os.killpg(victim.pid, signal.SIGKILL)
    out = wait_for(lambda: not in_upstream(cluster, victim.port), 10, "killed worker out of upstream", 0.02)
    return Event(t0 + max(out, 1.0) + 1.0, {"out_of_upstream_s": out}, victim_ports=[victim.port])


def sigterm(cluster: LocalCluster) -> Event:
    victim = _victim(cluster)
    os.kill(victim.pid, signal.SIGTERM)
    out = wait_for(lambda: not in_upstream(cluster, victim.port), 10, "drained worker out of upstream", 0.02)
    exited = wait_for(lambda: not victim.alive(), 40, "drained worker to exit", 0.05)
    return Event(time.monotonic(), {"out_of_upstream_s": out, "exit_s": exited + out}, victim_ports=[victim.port])


def rolling_restart(cluster: LocalCluster) -> Event:
    """Start a replacement, wait until it passes, then drain one old worker; for every worker."""
    old = list(cluster.workers().values())
    newcomers: dict[str, float] = {}
    for proc in old:
        _, worker_id, passing_at = _start_and_wait(cluster)
        newcomers[worker_id] = passing_at
        cluster.stop_worker(proc.name)  # drains it; a plain SIGTERM would have the supervisor restart it
    return Event(time.monotonic(), {"workers_replaced": len(old)}, newcomers=newcomers)


def scale_1_6_1(cluster: LocalCluster) -> Event:
    """From one worker to six (each started as soon as the last passes), then back to one."""
    newcomers: dict[str, float] = {}
    t0 = time.monotonic()
    for _ in range(5):
        _, worker_id, passing_at = _start_and_wait(cluster)
        newcomers[worker_id] = passing_at
    up = time.monotonic() - t0
    time.sleep(2.0)
    cluster.scale(1)
    return Event(time.monotonic(), {"to_six_s": up, "six_to_one_s": time.monotonic() - t0 - up}, newcomers=newcomers)


def hang(cluster: LocalCluster, hold_s: float = 8.0) -> Event:
    """SIGSTOP the whole process group (master, worker, registrar thread) and leave it stopped."""
    victim = _victim(cluster)
    t0 = time.monotonic()
    os.killpg(victim.pid, signal.SIGSTOP)
    try:
        out = wait_for(lambda: not in_upstream(cluster, victim.port), 20, "hung worker out of upstream", 0.02)
        time.sleep(max(0.0, t0 + hold_s - time.monotonic()))
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        os.killpg(victim.pid, signal.SIGCONT)
    return Event(time.monotonic(), {"out_of_upstream_s": out}, victim_ports=[victim.port])


def consul_restart(cluster: LocalCluster) -> Event:
    before = {s["ID"] for s in cluster.passing()}
    consul = cluster.live()["consul"]
    t0 = time.monotonic()
    os.kill(consul.pid, signal.SIGKILL)
    wait_for(lambda: not consul.alive(), 10, "consul to die", 0.05)
    cluster.start_consul()  # the supervisor has restarted it already; this waits for its leader
    wait_for(lambda: {s["ID"] for s in cluster.passing()} == before, 30, "workers registered again", 0.1)
    return Event(time.monotonic(), {"reregistered_s": time.monotonic() - t0})


def zero_then_one(cluster: LocalCluster) -> Event:
    """Every worker drains away; the gateway answers 503 alone; then one worker comes back."""
    url = f"{cluster.config.gateway_url}/v1/ner"
    t0 = time.monotonic()
    cluster.scale(0)
    wait_for(lambda: requests.post(url, json={"text": "北京"}, timeout=5).status_code == 503, 10, "503")
    empty_s = time.monotonic() - t0
    timings, bodies_ok = [], True
    for _ in range(50):
        started = time.monotonic()
        response = requests.post(url, json={"text": "北京"}, timeout=5)
        timings.append(time.monotonic() - started)
        bodies_ok &= (
            response.status_code == 503
            and response.headers.get("Content-Type", "").startswith("application/json")
            and {"title", "description"} <= set(response.json())
        )
    _, worker_id, passing_at = _start_and_wait(cluster)
    return Event(
        time.monotonic(),
        {"to_empty_s": empty_s, "max_503_ms": max(timings) * 1000, "json_503": "yes" if bodies_ok else "NO"},
        newcomers={worker_id: passing_at},
    )


def overload_event(seconds: float) -> Callable[[LocalCluster], Event]:
    """No failure injected: the load itself is the event (run at 2x capacity)."""

    def inject(cluster: LocalCluster) -> Event:
        return Event(time.monotonic() + seconds)

    return inject


def stopped_routing_s(run: ScenarioRun) -> float | None:
    """Last send time of a request the gateway tried on a victim port, after the event."""
    if not run.event.victim_ports:
        return None
    victims = set(run.event.victim_ports)
    times = [
        r.sent_at for r in run.records if r.sent_at >= run.event_at and victims & set(run.tried.get(r.request_id, []))
    ]
    return (max(times) - run.event_at) if times else 0.0


def to_traffic_s(run: ScenarioRun) -> float | None:
    """Slowest newcomer: from passing in Consul to the first request it answered."""
    if not run.event.newcomers:
        return None
    worst = 0.0
    for worker_id, passing_at in run.event.newcomers.items():
        served = [r.sent_at + r.latency for r in run.records if r.worker == worker_id and r.ok]
        if not served:
            return float("inf")
        worst = max(worst, min(served) - passing_at)
    return max(worst, 0.0)
