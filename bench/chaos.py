"""Chaos harness: one failure at a time under steady load through the gateway, with figures.

    .venv/bin/python -m bench.chaos [--only kill9,hang] [--load 0.4] [--out FILE]

Starts its own local cluster (free ports, own run directory), measures capacity, then runs
each scenario with two client kinds side by side: "retrying" resends once when a reused
keep-alive connection was reset before any answer; "naive" does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Callable

from bench import scenarios
from bench.loadgen import measure_capacity
from bench.localrun import local_cluster
from bench.report import summarize, table
from scripts.localcluster import LocalCluster

BASE_WORKERS = 2

# name -> (workers before the event, event)
SCENARIOS: dict[str, tuple[int, Callable[[LocalCluster], scenarios.Event]]] = {
    "kill9": (BASE_WORKERS, scenarios.kill9),
    "sigterm": (BASE_WORKERS, scenarios.sigterm),
    "rolling_restart": (BASE_WORKERS, scenarios.rolling_restart),
    "scale_1_6_1": (1, scenarios.scale_1_6_1),
    "hang": (BASE_WORKERS, scenarios.hang),
    "consul_restart": (BASE_WORKERS, scenarios.consul_restart),
    "zero_then_one": (BASE_WORKERS, scenarios.zero_then_one),
}


def _reset(cluster: LocalCluster, workers: int) -> None:
    """Back to a known shape between scenarios, so no event sees the last one's leftovers."""
    cluster.up(workers)
    cluster.scale(workers)
    cluster.wait_gateway_serving()
    time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated scenarios (default: all, then overload)")
    parser.add_argument("--load", type=float, default=0.4, help="steady load as a fraction of capacity")
    parser.add_argument("--overload", type=float, default=2.0, help="overload as a multiple of capacity")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/chaos.json"))
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else [*SCENARIOS, "overload"]
    results = []
    with local_cluster(BASE_WORKERS) as cluster:
        url = f"{cluster.config.gateway_url}/v1/ner"
        capacity, cap_cpu = measure_capacity(url)
        print(
            f"capacity with {BASE_WORKERS} workers: {capacity:.0f} req/s "
            f"(generator CPU {cap_cpu:.1f}s in 6s); steady load {args.load * capacity:.0f} req/s",
            flush=True,
        )
        for name in chosen:
            if name == "overload":
                _reset(cluster, BASE_WORKERS)
                run = scenarios.run_scenario(
                    "overload_%gx" % args.overload,
                    cluster,
                    args.overload * capacity,
                    scenarios.overload_event(10.0),
                    threads=12,
                    timeout=10.0,
                )
            else:
                workers, inject = SCENARIOS[name]
                _reset(cluster, workers)
                run = scenarios.run_scenario(name, cluster, args.load * capacity, inject)
            summary = summarize(run)
            results.append(summary)
            print(table(summary), flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "capacity_rps": capacity,
        "steady_rps": args.load * capacity,
        "harness_cpu_s": usage.ru_utime + usage.ru_stime,
        "scenarios": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str))
    print(f"harness process CPU (generator + orchestration): {record['harness_cpu_s']:.1f}s; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
