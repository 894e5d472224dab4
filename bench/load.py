"""Locust headless through the gateway, with CSV and HTML reports and a failure budget.

    .venv/bin/python -m bench.load --users 32 --time 30s --profile news --max-429 0.01 --max-p95-ms 300
    make load USERS=32 TIME=30s PROFILE=news MAX_429=0.01 MAX_P95_MS=300 HOST=http://127.0.0.1:8080

Exits 1 when the budget is broken: any transport error or 5xx, a 429 ratio or a p95 over the
bounds given, or no request made at all; 2 when Locust produced no report. Every run prints
Locust's own CPU beside the figures: one Locust process uses at most one of the machine's
cores, and whatever it uses is not available to nginx, the workers and Consul.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO_ROOT / "bench" / "locustfile.py"
ARTIFACTS = REPO_ROOT / "test-artifacts"
PROFILES = {"original": "OriginalProfileUser", "news": "NewsUser", "batch": "BatchUser", "paced": "PacedNewsUser"}
CPU_WARNING = "CPU usage above"


@dataclass(frozen=True)
class LoadResult:
    """What one Locust run measured, plus the CPU it and the whole machine used meanwhile."""

    profile: str
    users: int
    wall_s: float
    requests: int
    rps: float
    outcomes: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    locust_cpu_s: float
    machine_busy_cores: float | None
    reports: tuple[Path, ...]
    returncode: int
    cpu_warning: bool = False
    slow: int = 0  # answers slower than --slow-ms, when the run passed one
    log_tail: str = ""

    def count(self, kind: str) -> int:
        return self.outcomes.get(kind, 0)

    @property
    def ratio_429(self) -> float:
        return self.count("429") / self.requests if self.requests else 0.0

    @property
    def ok_rps(self) -> float:
        """Successful answers per second of the run."""
        return self.rps * self.count("2xx") / self.requests if self.requests else 0.0

    @property
    def locust_core_share(self) -> float:
        return self.locust_cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass(frozen=True)
class Budget:
    """What a run may cost: none of transport errors or 5xx, and optional bounds on 429s and p95."""

    max_429: float | None = None
    max_p95_ms: float | None = None

    def broken(self, result: LoadResult) -> list[str]:
        """Why the run broke the budget (empty when it did not)."""
        reasons = []
        if result.requests == 0:
            reasons.append("no request was made")
        for kind, label in (("transport", "transport errors"), ("5xx", "5xx answers")):
            if result.count(kind):
                reasons.append(f"{result.count(kind)} {label}")
        if self.max_429 is not None and result.ratio_429 > self.max_429:
            reasons.append(f"429 ratio {result.ratio_429:.4f} > {self.max_429}")
        if self.max_p95_ms is not None and (result.p95_ms is None or result.p95_ms > self.max_p95_ms):
            reasons.append(f"p95 {result.p95_ms} ms > {self.max_p95_ms} ms")
        return reasons


def duration_seconds(text: str) -> float:
    """Locust's run-time syntax: 30, 30s, 2m, 1h30m."""
    if re.fullmatch(r"\d+", text):
        return float(text)
    parts = re.findall(r"(\d+)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 30s, 2m, 1h30m)")
    return float(sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts))


def run_time(text: str) -> str:
    """A run time Locust accepts, checked here so a typo fails before anything starts."""
    duration_seconds(text)
    return text


def loopback_url(url: str) -> str:
    """Load goes to this machine's gateway only: a typo must not load someone else's service."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address; pass --allow-remote to load it")
    return url


def machine_busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LocustRun:
    """One headless Locust run against a host; `run()` returns its LoadResult."""

    host: str
    profile: str
    users: int
    duration: str
    name: str = ""
    spawn_rate: float | None = None
    artifacts: Path = ARTIFACTS
    reset_stats: bool = False
    extra: Sequence[str] = field(default_factory=tuple)

    def argv(self, prefix: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "-u",
            str(self.users),
            "-r",
            str(self.spawn_rate or self.users),
            "-t",
            self.duration,
            "--host",
            self.host,
            "--csv",
            str(prefix),
            "--html",
            f"{prefix}.html",
            "--outcomes",
            f"{prefix}_outcomes.json",
            "--loglevel",
            "WARNING",
            *(["--reset-stats"] if self.reset_stats else []),
            *self.extra,
            PROFILES[self.profile],
        ]

    def run(self) -> LoadResult:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        prefix = self.artifacts / (self.name or f"load-{self.profile}-{self.users}u")
        for stale in self.artifacts.glob(f"{prefix.name}_*"):
            stale.unlink()
        cpu_before, busy_before = _children_cpu(), machine_busy_jiffies()
        started = time.monotonic()
        done = subprocess.run(
            self.argv(prefix),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=duration_seconds(self.duration) + 120,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        wall = time.monotonic() - started
        cpu = _children_cpu() - cpu_before
        busy_after = machine_busy_jiffies()
        busy_cores = None
        if busy_before and busy_after and busy_after[1] > busy_before[1]:
            busy_cores = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]) * (os.cpu_count() or 1)
        try:
            final = json.loads(Path(f"{prefix}_outcomes.json").read_text())
        except (OSError, ValueError):
            final = {}
        reports = tuple(
            p
            for p in (Path(f"{prefix}_stats.csv"), Path(f"{prefix}_failures.csv"), Path(f"{prefix}.html"))
            if p.exists()
        )
        log = done.stdout + done.stderr
        return LoadResult(
            profile=self.profile,
            users=self.users,
            wall_s=wall,
            requests=int(final.get("requests") or 0),
            rps=float(final.get("rps") or 0.0),
            outcomes=final.get("outcomes", {}),
            p50_ms=final.get("p50_ms"),
            p95_ms=final.get("p95_ms"),
            p99_ms=final.get("p99_ms"),
            max_ms=final.get("max_ms"),
            locust_cpu_s=cpu,
            machine_busy_cores=busy_cores,
            reports=reports,
            returncode=done.returncode,
            cpu_warning=bool(final.get("cpu_warning")) or CPU_WARNING in log,
            slow=int(final.get("slow") or 0),
            log_tail="\n".join(log.splitlines()[-15:]),
        )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(results: Sequence[LoadResult], label: str = "run") -> str:
    """A markdown table: one row per run."""
    header = f"| {label} | users | requests | req/s | 2xx | 429 | 5xx | other 4xx | transport | p50 ms | p95 ms | p99 ms | Locust CPU |"
    lines = [header, "|" + "|".join(["---"] + ["---:"] * 12) + "|"]
    for r in results:
        lines.append(
            f"| {r.profile} | {r.users} | {r.requests} | {r.rps:.1f} | {r.count('2xx')} | {r.count('429')} | "
            f"{r.count('5xx')} | {r.count('other')} | {r.count('transport')} | {_fmt(r.p50_ms)} | "
            f"{_fmt(r.p95_ms)} | {_fmt(r.p99_ms)} | {r.locust_core_share:.0%} of a core |"
        )
    return "\n".join(lines)


def cpu_note(result: LoadResult) -> str:
    """How the generator and the system under test shared the machine's cores."""
    cores = os.cpu_count() or 1
    note = (
        f"Locust used {result.locust_cpu_s:.1f} s CPU in {result.wall_s:.1f} s "
        f"({result.locust_core_share:.0%} of one core; one Locust process can use at most one)"
    )
    if result.machine_busy_cores is not None:
        rest = max(result.machine_busy_cores - result.locust_core_share, 0.0)
        note += (
            f"; the machine was {result.machine_busy_cores:.2f} of {cores} cores busy, so about "
            f"{rest:.2f} cores went to nginx, the workers, Consul and anything else running"
        )
    if result.cpu_warning:
        note += ". Locust warned that its CPU was above 90 %: its figures may understate the gateway"
    return note


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--time", default="30s", type=run_time, help="run time, Locust syntax (30s, 2m)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="news",
        help="original: HttpUser, 1-3 s think time, /predict; news: closed loop of never "
        "repeated MSRA test sentences; batch: /v1/ner texts; paced: 1 request/s per user",
    )
    parser.add_argument("--host", default=None, help="gateway URL (default: the local cluster's)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a host that is not loopback")
    parser.add_argument("--max-429", type=float, default=None, help="largest allowed ratio of 429 answers")
    parser.add_argument("--max-p95-ms", type=float, default=None, help="largest allowed p95, ms")
    parser.add_argument(
        "--spawn-rate", type=float, default=None, help="users started per second (default: all at once)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="texts per request (batch profile)")
    parser.add_argument("--name", default="", help="report file prefix in test-artifacts/")
    return parser


def default_host() -> str:
    from scripts.localcluster import load_config

    return load_config(os.environ).gateway_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    host = args.host or default_host()
    if not args.allow_remote:
        try:
            loopback_url(host)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    extra = ("--batch-size", str(args.batch_size)) if args.batch_size else ()
    result = LocustRun(host, args.profile, args.users, args.time, args.name, args.spawn_rate, extra=extra).run()
    budget = Budget(args.max_429, args.max_p95_ms)
    print(f"Locust {args.profile} profile, {args.users} users, {args.time} against {host}")
    print(summary_table([result], label="profile"))
    print(cpu_note(result))
    if not result.reports or not result.outcomes:
        print(f"Locust produced no report (exit {result.returncode}):\n{result.log_tail}")
        return 2
    print(
        "reports: "
        + ", ".join(str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p) for p in result.reports)
    )
    reasons = budget.broken(result)
    print("budget: " + ("kept" if not reasons else "BROKEN: " + "; ".join(reasons)))
    return 1 if reasons else 0


if __name__ == "__main__":
    raise SystemExit(main())
