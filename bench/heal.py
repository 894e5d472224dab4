"""`make heal`: kill -9 each program of a local cluster under paced load, rounds of each, then a kill loop.

Prints the table in docs/RELIABILITY.md: how long until the program runs again, until a killed
worker's new instance passes, until the cluster has its full shape with the gateway routing to every
passing worker, and what a retrying and a naive keep-alive client lost. Then `down` right after a
kill of each program, checked for leftovers. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.healing import PROGRAMS, Healed, kill_and_heal, kill_loop, program_name
from scripts.localcluster import LocalCluster, load_config, on_free_ports
from scripts.localmode.procs import pids_under, port_listened


def _range(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values]
    if not values:
        return "-"
    if len(values) == 1 or max(values) - min(values) < 10**-digits:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f}–{max(values):.{digits}f} (median {statistics.median(values):.{digits}f})"


def _row(program: str, runs: list[Healed]) -> str:
    passing = [r.passing_again_s for r in runs if r.passing_again_s is not None]
    cells = [
        f"kill -9 {program}",
        _range([r.running_again_s for r in runs], 1000, 0) + " ms",
        _range([r.serving_again_s for r in runs], 1000, 0) + " ms",
        (_range(passing) + " s") if passing else "-",
        _range([r.whole_again_s for r in runs]) + " s",
    ]
    for kind in ("retrying", "naive"):
        cells.append(f"{sum(r.failed[kind] for r in runs)} / {sum(r.requests[kind] for r in runs)}")
    cells.append(_range([r.gap_ms for r in runs], digits=0) + " ms")
    return "| " + " | ".join(cells) + " |"


def down_after_kill(cluster: LocalCluster, program: str) -> tuple[float, list[str]]:
    """kill -9, then down at once: seconds down took, and what it left (nothing, hopefully)."""
    ports = cluster.cluster_ports()
    daemon = cluster.supervisor.daemon_pid()
    pid = daemon if program == "supervisord" else cluster.live()[program_name(program)].pid
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    cluster.down()
    took = time.monotonic() - started
    left = [f"pid {p}" for p in pids_under(cluster.config.run_dir / "work")]
    left += [f"port {p}" for p in ports if port_listened(p)]
    return took, left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="kills of each program")
    parser.add_argument("--rate", type=float, default=40.0, help="paced requests/s through the gateway")
    parser.add_argument("--loop-kills", type=int, default=20)
    parser.add_argument("--loop-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)

    run_dir = Path(tempfile.mkdtemp(prefix="ner-heal-"))
    run_dir.chmod(0o755)
    cluster = LocalCluster(
        replace(on_free_ports(load_config(os.environ)), run_dir=run_dir, drain_seconds=2.0), say=lambda message: None
    )
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        cluster.up(2)
        print(
            f"2 workers, {args.rate:g} requests/s paced through the gateway (half a resending keep-alive client, "
            f"half a naive one), {args.rounds} kills of each program; load average {load_before:.1f}\n"
        )
        print(
            "| program | running again | gateway answering | new instance passing | cluster whole again | "
            "retrying client failed | naive client failed | longest time with no answer |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for program in PROGRAMS:
            runs = [kill_and_heal(cluster, program, rate=args.rate) for _ in range(args.rounds)]
            print(_row(program, runs), flush=True)
        loop = kill_loop(cluster, kills=args.loop_kills, seconds=args.loop_seconds, rate=args.rate * 0.75)
        counts = {name: loop.kills.count(name) for name in sorted(set(loop.kills))}
        print(
            f"\nKill loop: {len(loop.kills)} kills over {loop.seconds:.0f} s ({counts}); full shape "
            f"{loop.whole_again_s:.1f} s after the last; retrying client {loop.failed['retrying']} failed of "
            f"{loop.requests['retrying']}, naive client {loop.failed['naive']} failed of {loop.requests['naive']}"
        )
        print("\n| killed, then `down` at once | down took | left running or listening |")
        print("|---|---:|---|")
        for program in (*PROGRAMS, "supervisord"):
            cluster.up(2)
            took, left = down_after_kill(cluster, program)
            print(f"| {program} | {took:.1f} s | {', '.join(left) or 'nothing'} |", flush=True)
    finally:
        cluster.down()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n{time.monotonic() - started:.0f} s in all; load average {load_before:.1f} → {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
