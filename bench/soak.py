"""Soak: a long steady load at a fraction of measured capacity; errors, worker RSS and fds over time.

    .venv/bin/python -m bench.soak [--minutes 10] [--load 0.7] [--out FILE]

RSS and open file descriptors are summed over each worker's process group (gunicorn master
and its worker processes), sampled every `--every` seconds. Growth compares the last sample
with the first one taken after a warm-up minute (allocator and caches settle first).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.loadgen import PacedLoad, latency_ms, measure_capacity
from bench.localrun import local_cluster

WORKERS = 2


def group_usage(pgid: int) -> tuple[int, int]:
    """(RSS bytes, open fds) summed over the processes of one process group."""
    rss = fds = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != pgid:
                continue
            rss += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
            fds += len(os.listdir(f"/proc/{entry}/fd"))
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
    return rss, fds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of measured capacity")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/soak.json"))
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    with local_cluster(WORKERS) as cluster:
        url = f"{cluster.config.gateway_url}/v1/ner"
        capacity, _ = measure_capacity(url)
        rate = args.load * capacity
        print(f"capacity {capacity:.0f} req/s; soak at {rate:.0f} req/s for {args.minutes:g} min", flush=True)
        workers = {p.name: p.pid for p in cluster.workers().values()}
        load = PacedLoad(url, rate=rate, threads=4, kinds=("retrying",), max_seconds=duration + 5).start()
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(min(args.every, max(0.0, duration - (time.monotonic() - started))))
            at = time.monotonic() - started
            usage = {name: group_usage(pid) for name, pid in workers.items()}
            done = list(load.records)
            samples.append(
                {
                    "t_s": round(at),
                    "requests": len(done),
                    "failed": sum(not r.ok for r in done),
                    **{f"{n}_rss_mb": round(u[0] / 2**20, 1) for n, u in usage.items()},
                    **{f"{n}_fds": u[1] for n, u in usage.items()},
                }
            )
            print(json.dumps(samples[-1]), flush=True)
        load.stop()
    records = load.records
    baseline = next((s for s in samples if s["t_s"] >= args.warmup), samples[0])
    growth = {n: (samples[-1][f"{n}_rss_mb"] / baseline[f"{n}_rss_mb"] - 1) * 100 for n in workers}
    summary = {
        "capacity_rps": capacity,
        "rate_rps": rate,
        "minutes": args.minutes,
        "requests": len(records),
        "failed": sum(not r.ok for r in records),
        "achieved_rps": len(records) / duration,
        "latency_ms": latency_ms(records),
        "rss_growth_pct_after_warmup": growth,
        "generator_cpu_s": load.cpu_seconds,
        "fds_first_last": {n: (samples[0][f"{n}_fds"], samples[-1][f"{n}_fds"]) for n in workers},
        "loadavg_at_end": os.getloadavg(),
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2))
    return 0 if summary["failed"] == 0 and all(g <= 5 for g in growth.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
