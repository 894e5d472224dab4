"""kill -9 of one program of the local cluster under paced load, and how the supervisor heals it.

Shared by tests/integration/test_self_healing.py (which asserts on the outcomes) and
bench/heal.py (`make heal`, which prints the table in docs/RELIABILITY.md).
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field

from bench.loadgen import PacedLoad, Record
from scripts.localcluster import LocalCluster, pid_alive, wait_for

PROGRAMS = ("consul", "nginx", "renderer", "worker")
KINDS = ("retrying", "naive")


def program_name(program: str) -> str:
    """The supervisor's name for a program kind: a worker is worker-1, its gunicorn master."""
    return "worker-1" if program == "worker" else program


def full_shape(cluster: LocalCluster, workers: int) -> bool:
    """Every program runs, `workers` workers run, and each one's current port passes in Consul."""
    states = cluster.supervisor.states()
    if not states or any(state.state != "RUNNING" for state in states.values()):
        return False
    running = {proc.port for proc in cluster.workers().values()}
    passing = {service["Port"] for service in cluster.passing()}
    return len(running) == workers and passing == running


def wait_full_shape(cluster: LocalCluster, workers: int, timeout: float = 60) -> float:
    took = wait_for(
        lambda: full_shape(cluster, workers), timeout, f"the cluster's full shape ({workers} workers)", interval=0.05
    )
    if workers and cluster.wait_gateway_routes_to_all(timeout=20) is None:
        raise TimeoutError("the gateway does not route to every passing worker")
    return took


def runs_anew(cluster: LocalCluster, name: str, old_pid: int) -> bool:
    """A new process of the program runs (the supervisor counts it as RUNNING one second later)."""
    state = cluster.supervisor.state(name)
    return (
        state is not None
        and state.state in ("STARTING", "RUNNING")
        and state.pid not in (0, old_pid)
        and pid_alive(state.pid)
    )


def serving_gap_ms(records: list[Record]) -> float:
    """The longest time between two successful answers: how long clients saw no service at all."""
    done = sorted(r.sent_at + r.latency for r in records if r.ok)
    return max((later - earlier for earlier, later in zip(done, done[1:])), default=0.0) * 1000


@dataclass
class Healed:
    """What one kill cost and how long healing took (seconds from the kill)."""

    program: str
    running_again_s: float
    serving_again_s: float  # a request through the gateway answered 200 again
    passing_again_s: float | None  # workers only: their new instance passing in Consul
    whole_again_s: float  # full shape, and the gateway routing to every passing worker
    requests: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    gap_ms: float = 0.0  # serving_gap_ms over both clients
    failures: list[str] = field(default_factory=list)  # the retrying client's, for the test's message


def _wait_records(load: PacedLoad, more: int, timeout: float) -> None:
    target = len(load.records) + more
    wait_for(lambda: len(load.records) >= target, timeout, f"{more} more requests", interval=0.05)


def kill_and_heal(cluster: LocalCluster, program: str, workers: int = 2, rate: float = 40.0) -> Healed:
    """SIGKILL one program while `rate` requests/s flow through the gateway; measure the way back."""
    wait_full_shape(cluster, workers)
    name = program_name(program)
    load = PacedLoad(f"{cluster.config.gateway_url}/v1/ner", rate=rate, threads=2, kinds=KINDS, max_seconds=90).start()
    try:
        _wait_records(load, int(rate), 15)
        victim = cluster.live()[name]
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(lambda: runs_anew(cluster, name, victim.pid), 15, f"{name} running again", interval=0.01)
        running = time.monotonic() - killed
        serving = running + cluster.wait_gateway_serving(timeout=15)
        passing = None
        if program == "worker":

            def new_instance_passing() -> bool:
                port = cluster.port_of(name)
                return port != victim.port and port in {s["Port"] for s in cluster.passing()}

            wait_for(new_instance_passing, 20, f"{name}'s new instance passing", interval=0.05)
            passing = time.monotonic() - killed
        wait_full_shape(cluster, workers)
        whole = time.monotonic() - killed
        _wait_records(load, int(rate), 15)
    finally:
        load.stop()
    return Healed(program, running, serving, passing, whole, **_tally(load.records))


def _tally(records: list[Record]) -> dict:
    t0 = min((r.sent_at for r in records), default=0.0)
    by_kind = {kind: [r for r in records if r.kind == kind] for kind in KINDS}
    return {
        "requests": {kind: len(rs) for kind, rs in by_kind.items()},
        "failed": {kind: sum(not r.ok for r in rs) for kind, rs in by_kind.items()},
        "gap_ms": serving_gap_ms(records),
        "failures": [
            f"{r.sent_at - t0:.2f}s {r.request_id}: {r.status or r.error} after {r.latency:.2f}s"
            for r in by_kind["retrying"]
            if not r.ok
        ][:10],
    }


@dataclass
class KillLoop:
    """A run of random kills and what clients saw over all of it."""

    kills: list[str]
    seconds: float
    whole_again_s: float
    requests: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    gap_ms: float = 0.0
    failures: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)  # each kill, seconds from the start


def kill_loop(
    cluster: LocalCluster, kills: int = 20, seconds: float = 120.0, workers: int = 2, rate: float = 30.0, seed: int = 7
) -> KillLoop:
    """`kills` random kill -9s spread over `seconds`, under paced load; then wait for the full shape.

    A worker is a candidate only while every worker passes: two workers dead at once is an outage
    no supervisor prevents (more workers do), and that is not what this measures.
    """
    wait_full_shape(cluster, workers)
    rng = random.Random(seed)
    load = PacedLoad(
        f"{cluster.config.gateway_url}/v1/ner", rate=rate, threads=2, kinds=KINDS, max_seconds=seconds + 120
    ).start()
    done: list[str] = []
    timeline: list[str] = []
    started = time.monotonic()
    try:
        for index in range(kills):
            next_at = started + (index + 1) * seconds / kills
            live = cluster.live()
            candidates = [name for name in ("consul", "nginx", "renderer") if name in live]
            running_workers = cluster.workers()
            passing = {s["Port"] for s in cluster.passing()}
            if len(running_workers) == workers and {p.port for p in running_workers.values()} <= passing:
                candidates += list(running_workers)
            if candidates:
                victim = rng.choice(candidates)
                os.kill(live[victim].pid, signal.SIGKILL)
                done.append(victim)
                timeline.append(f"{time.monotonic() - started:.2f}s {victim}")
            time.sleep(max(0.0, next_at - time.monotonic()))
        last = time.monotonic()
        wait_full_shape(cluster, workers, timeout=90)
        whole = time.monotonic() - last
        _wait_records(load, int(rate * 2), 20)
    finally:
        load.stop()
    return KillLoop(done, time.monotonic() - started, whole, timeline=timeline, **_tally(load.records))
