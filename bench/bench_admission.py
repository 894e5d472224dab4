"""Admission and gateway reloads under load, "before" and "after" side by side in one run.

    .venv/bin/python -m bench.bench_admission             # the figures, about 7 minutes
    .venv/bin/python -m bench.bench_admission --dry-run   # tiny sizes, about a minute: proves it runs

before: a worker refuses at once when every inference slot is busy (NER_QUEUE_DEADLINE_MS=0)
        and the renderer reloads nginx on every weight change (NER_RENDER_HOLD_DOWN=0);
after:  the defaults (queue up to the deadline; reload hold-down).

Both clusters run at the same time on free ports (2 workers each, the shipped default model
unless NER_MODEL_DIR says otherwise, gateway rate limit off); every step runs on one while the
other idles, "before" then "after", so both see the same machine. Steps: closed loops of
never repeated MSRA sentences (Locust FastHttpUser, no think time) at 8, 32 and 128 users;
an open loop at 2x the best closed-loop throughput (paced Locust users) with a paced
keep-alive probe beside it (bench/loadgen.PacedLoad: a client that resends on a reset idle
connection and a naive one that does not); the original deployment's profile at 200 users.
Every table row says how much CPU the load generator took: the machine has 2 cores and the
generator shares them with nginx, the workers and Consul.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from bench.load import ARTIFACTS, REPO_ROOT, LoadResult, LocustRun
from bench.loadgen import PacedLoad, Record
from bench.localrun import local_cluster
from scripts.localcluster import LocalCluster
from worker.config import DEFAULT_MODEL_DIR

WORKERS = 2
SHIPPED_MODEL = DEFAULT_MODEL_DIR
NGINX_CONF = REPO_ROOT / "nginx-template" / "nginx.conf.tmpl"
# The variables that make "before" the earlier behaviour; "after" runs with neither set.
VARIANTS: dict[str, dict[str, str]] = {
    "before": {"NER_QUEUE_DEADLINE_MS": "0", "NER_RENDER_HOLD_DOWN": "0"},
    "after": {},
}
COMMON_ENV = {"NER_GATEWAY_RATE": "off"}
# Per-step costs on top of the load itself, measured on the project's 2-core machine.
LOCUST_START_S = 3.0
CLUSTER_UP_DOWN_S = 15.0
# Open loop: each paced Locust user holds one connection; nginx has 2 x 1024 worker_connections
# and a proxied request needs two, so the open loop stays under this many users.
MAX_OPEN_USERS = 800
PROBE_RATE = 20.0  # requests/s of the keep-alive probe, half naive, half resending


@dataclass(frozen=True)
class Plan:
    warmup_seconds: int
    closed_users: tuple[int, ...]
    seconds: int
    open_seconds: int
    open_factor: float
    user_rate: float
    original_users: int

    def estimate_s(self) -> float:
        """Wall time this plan takes: load, Locust start-ups, two clusters up and down."""
        variants = len(VARIANTS)
        steps = self.warmup_seconds + LOCUST_START_S
        steps += len(self.closed_users) * (self.seconds + LOCUST_START_S)
        steps += self.open_seconds + 2 + LOCUST_START_S  # 2 s of ramp before the figures count
        steps += self.seconds + self.original_ramp_s() + LOCUST_START_S
        return variants * (steps + CLUSTER_UP_DOWN_S)

    def original_ramp_s(self) -> float:
        return math.ceil(self.original_users / 50)


# A paced user falls behind once an answer takes longer than 1 / user_rate: 0.5/s leaves 2 s,
# more than the queue deadlines allow, so the open loop offers what it says.
FULL = Plan(
    warmup_seconds=5,
    closed_users=(8, 32, 128),
    seconds=30,
    open_seconds=30,
    open_factor=2.0,
    user_rate=0.5,
    original_users=200,
)
DRY = Plan(
    warmup_seconds=1, closed_users=(8,), seconds=3, open_seconds=3, open_factor=2.0, user_rate=0.5, original_users=20
)


# --------------------------------------------------------------------------- clusters


@contextmanager
def environment(overrides: dict[str, str], unset: Sequence[str]) -> Iterator[None]:
    """os.environ with these variables set and those removed, for the processes started inside."""
    saved = {key: os.environ.get(key) for key in [*overrides, *unset]}
    for key in unset:
        os.environ.pop(key, None)
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def renderer_log(cluster: LocalCluster) -> Path | None:
    """The renderer's JSON log in the cluster's run directory (its name, not its layout, is fixed)."""
    found = sorted(cluster.config.run_dir.glob("**/renderer*.log"))
    return found[0] if found else None


def reload_count(cluster: LocalCluster) -> int | None:
    """nginx reloads the renderer made so far: its `"reloaded": true` decision lines."""
    path = renderer_log(cluster)
    if path is None:
        return None
    return sum(1 for line in path.read_text(errors="replace").splitlines() if '"reloaded": true' in line)


def renderer_hold_down(cluster: LocalCluster) -> str:
    """The hold-down the running renderer announced at start-up, to check the variant took."""
    path = renderer_log(cluster)
    text = path.read_text(errors="replace") if path else ""
    found = re.findall(r'"hold_down_s": ([0-9.]+)', text)
    return f"{float(found[-1]):g} s" if found else "unknown (no start-up line)"


def queue_deadline_ms(overrides: dict[str, str]) -> float:
    """The workers' queue deadline for these variables, through the workers' own config."""
    from worker.config import load_config

    env = {key: value for key, value in os.environ.items() if key != "NER_QUEUE_DEADLINE_MS"}
    return float(getattr(load_config({**env, **overrides}), "queue_deadline_ms", 0.0))


def gateway_tries() -> int:
    """How many workers nginx tries for one request (proxy_next_upstream_tries)."""
    found = re.search(r"proxy_next_upstream_tries\s+(\d+)", NGINX_CONF.read_text())
    return int(found.group(1)) if found else 1


# --------------------------------------------------------------------------- steps


@dataclass
class Variant:
    name: str
    cluster: LocalCluster
    deadline_ms: float

    @property
    def url(self) -> str:
        return self.cluster.config.gateway_url


@dataclass(frozen=True)
class Step:
    """One Locust run on one variant, with the nginx reloads it caused."""

    variant: str
    result: LoadResult
    reloads: int | None

    @property
    def reloads_per_min(self) -> float | None:
        return None if self.reloads is None else self.reloads / (self.result.wall_s / 60)


def locust_step(
    variant: Variant,
    name: str,
    profile: str,
    users: int,
    seconds: float,
    spawn_rate: float | None = None,
    reset_stats: bool = False,
    extra: Sequence[str] = (),
) -> Step:
    reloads_before = reload_count(variant.cluster)
    result = LocustRun(
        variant.url,
        profile,
        users,
        f"{int(math.ceil(seconds))}s",
        name=f"admission-{variant.name}-{name}",
        spawn_rate=spawn_rate,
        reset_stats=reset_stats,
        extra=extra,
    ).run()
    reloads_after = reload_count(variant.cluster)
    reloads = None if reloads_before is None or reloads_after is None else reloads_after - reloads_before
    return Step(variant.name, result, reloads)


@dataclass(frozen=True)
class OpenStep:
    step: Step
    offered_rps: float
    bound_ms: float
    probe: list[Record]
    probe_cpu_s: float


def open_step(variant: Variant, plan: Plan, rate: float, gateway_ms: float) -> OpenStep:
    """Paced Locust users at `rate`, a paced keep-alive probe beside them."""
    user_rate = max(plan.user_rate, rate / MAX_OPEN_USERS)
    users = max(1, math.ceil(rate / user_rate))
    bound_ms = gateway_tries() * variant.deadline_ms + gateway_ms
    probe = PacedLoad(
        f"{variant.url}/v1/ner",
        rate=PROBE_RATE,
        threads=2,
        kinds=("retrying", "naive"),
        timeout=10.0,
        max_seconds=plan.open_seconds + 60,
    ).start()
    try:
        step = locust_step(
            variant,
            "open",
            "paced",
            users,
            plan.open_seconds + 2,
            spawn_rate=users / 2,
            reset_stats=True,
            extra=("--user-rate", f"{user_rate:g}", "--slow-ms", f"{bound_ms:g}"),
        )
    finally:
        probe.stop()
    return OpenStep(step, users * user_rate, bound_ms, list(probe.records), probe.cpu_seconds)


# --------------------------------------------------------------------------- tables


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _per_min(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def errors(result: LoadResult) -> int:
    return result.count("5xx") + result.count("transport") + result.count("other")


def closed_table(steps: list[Step]) -> str:
    lines = [
        "| variant | users | req/s | 2xx/s | 429 | errors (5xx, transport, other) | p50 ms | p95 ms | p99 ms "
        "| nginx reloads/min | Locust CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        r = s.result
        lines.append(
            f"| {s.variant} | {r.users} | {r.rps:.1f} | {r.ok_rps:.1f} | {r.count('429')} | {errors(r)} | "
            f"{_ms(r.p50_ms)} | {_ms(r.p95_ms)} | {_ms(r.p99_ms)} | {_per_min(s.reloads_per_min)} | "
            f"{r.locust_core_share:.0%} of a core |"
        )
    return "\n".join(lines)


def _probe_cells(records: list[Record], kind: str, bound_ms: float) -> str:
    mine = [r for r in records if r.kind == kind]
    failed = [r for r in mine if not r.ok]
    transport = sum(1 for r in mine if r.status is None)
    late = sum(1 for r in mine if r.status is not None and r.latency * 1000 > bound_ms)
    return f"{len(failed)} of {len(mine)} ({transport} transport, {late} late)"


def open_table(steps: list[OpenStep]) -> str:
    lines = [
        "| variant | offered req/s | achieved req/s | 2xx | 429 | errors | over bound | every answer 2xx/429 within bound "
        "| p50 ms | p95 ms | p99 ms | max ms | nginx reloads/min | naive keep-alive client failed | resending client failed "
        "| generator CPU |",
        "|---|" + "---:|" * 15,
    ]
    for o in steps:
        r = o.step.result
        every = (
            errors(r) == 0
            and r.slow == 0
            and all(
                (rec.ok or rec.status == 429) and rec.latency * 1000 <= o.bound_ms
                for rec in o.probe
                if rec.kind == "retrying"
            )
        )
        cpu = (r.locust_cpu_s + o.probe_cpu_s) / r.wall_s if r.wall_s else 0.0
        lines.append(
            f"| {o.step.variant} | {o.offered_rps:.0f} | {r.rps:.1f} | {r.count('2xx')} | {r.count('429')} | "
            f"{errors(r)} | {r.slow} | {'yes' if every else 'no'} (bound {o.bound_ms:.0f} ms) | "
            f"{_ms(r.p50_ms)} | {_ms(r.p95_ms)} | {_ms(r.p99_ms)} | {_ms(r.max_ms)} | "
            f"{_per_min(o.step.reloads_per_min)} | {_probe_cells(o.probe, 'naive', o.bound_ms)} | "
            f"{_probe_cells(o.probe, 'retrying', o.bound_ms)} | {cpu:.0%} of a core |"
        )
    return "\n".join(lines)


def original_table(steps: list[Step]) -> str:
    lines = [
        "| variant | users | req/s | failures | of which 429 | p95 ms | p99 ms | nginx reloads/min | Locust CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        r = s.result
        lines.append(
            f"| {s.variant} | {r.users} | {r.rps:.1f} | {r.requests - r.count('2xx')} | {r.count('429')} | "
            f"{_ms(r.p95_ms)} | {_ms(r.p99_ms)} | {_per_min(s.reloads_per_min)} | "
            f"{r.locust_core_share:.0%} of a core |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def start_variants(stack: ExitStack) -> list[Variant]:
    """Both clusters, each started with its own variables (their processes keep them)."""
    model = os.environ.get("NER_MODEL_DIR") or str(SHIPPED_MODEL)
    started = []
    for name, overrides in VARIANTS.items():
        unset = [key for key in VARIANTS["before"] if key not in overrides]
        with environment({**COMMON_ENV, "NER_MODEL_DIR": model, **overrides}, unset):
            cluster = stack.enter_context(local_cluster(WORKERS))
            deadline = queue_deadline_ms(overrides)
        started.append(Variant(name, cluster, deadline))
        print(
            f"{name}: gateway {cluster.config.gateway_url}, queue deadline {deadline:g} ms, "
            f"renderer hold-down {renderer_hold_down(cluster)}",
            flush=True,
        )
    return started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes: proves the benchmark runs")
    parser.add_argument(
        "--gateway-ms",
        type=float,
        default=1000.0,
        help="time allowed beyond the queue deadlines (proxying, inference, the shared "
        "machine): the open loop's bound is tries x deadline + this",
    )
    args = parser.parse_args(argv)
    plan = DRY if args.dry_run else FULL
    started = time.monotonic()
    print(
        f"plan: closed loop {', '.join(map(str, plan.closed_users))} users x {plan.seconds} s, open loop "
        f"{plan.open_factor:g}x capacity x {plan.open_seconds} s, original profile {plan.original_users} users "
        f"x {plan.seconds} s, for {' and '.join(VARIANTS)}; estimated total {plan.estimate_s() / 60:.1f} min",
        flush=True,
    )
    with ExitStack() as stack:
        variants = start_variants(stack)
        for variant in variants:  # first forward passes of each shape, connection pools
            locust_step(variant, "warmup", "news", 8, plan.warmup_seconds)
        closed: list[Step] = []
        for users in plan.closed_users:
            for variant in variants:
                closed.append(locust_step(variant, f"closed-{users}u", "news", users, plan.seconds))
                print(closed_table(closed[-1:]).splitlines()[-1], flush=True)
        capacity = max(step.result.ok_rps for step in closed)
        rate = plan.open_factor * capacity
        print(f"capacity (best closed-loop 2xx/s): {capacity:.0f}; open loop offers {rate:.0f} req/s", flush=True)
        opened = [open_step(variant, plan, rate, args.gateway_ms) for variant in variants]
        original = [
            locust_step(variant, "original", "original", plan.original_users, plan.seconds, spawn_rate=50)
            for variant in variants
        ]
    print("\n## Closed loop, uncached MSRA sentences (FastHttpUser, no think time)\n")
    print(closed_table(closed))
    print(
        f"\n## Open loop at {plan.open_factor:g}x capacity ({rate:.0f} req/s offered), with a keep-alive probe "
        f"at {PROBE_RATE:g} req/s\n"
    )
    print(open_table(opened))
    print(
        "\nbound = proxy_next_upstream_tries x queue deadline + --gateway-ms, over the Locust users and the "
        "resending probe; the naive client fails when a reload closed its idle keep-alive connection "
        "(transport) or on a non-2xx answer"
    )
    print(f"\n## Original profile ({plan.original_users} users, HttpUser, 1-3 s think time, /predict)\n")
    print(original_table(original))
    print(
        f"\nreports in {ARTIFACTS.relative_to(REPO_ROOT)}/admission-*; total run time "
        f"{(time.monotonic() - started) / 60:.1f} min (estimated {plan.estimate_s() / 60:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
