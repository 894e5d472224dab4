"""Tables of chaos results: per client kind, sent/failed and latency before/during/after the event."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.loadgen import latency_ms
from bench.scenarios import ScenarioRun, stopped_routing_s, to_traffic_s


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "never"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def summarize(run: ScenarioRun) -> dict[str, Any]:
    """Everything the table shows, as plain data for the JSON record."""
    kinds: dict[str, Any] = {}
    for kind in sorted({r.kind for r in run.records}):
        mine = [r for r in run.records if r.kind == kind]
        phases = {
            "before": [r for r in mine if r.sent_at < run.event_at],
            "during": [r for r in mine if run.event_at <= r.sent_at < run.event.ended_at],
            "after": [r for r in mine if r.sent_at >= run.event.ended_at],
        }
        failed = [r for r in mine if not r.ok]
        kinds[kind] = {
            "sent": len(mine),
            "failed": len(failed),
            "failed_by": dict(Counter(str(r.status or r.error) for r in failed)),
            "resent_stale": sum(r.retried for r in mine),
            "latency_ms": {phase: latency_ms(records) for phase, records in phases.items()},
        }
    return {
        "scenario": run.name,
        "kinds": kinds,
        "event_window_s": run.event.ended_at - run.event_at,
        "stopped_routing_s": stopped_routing_s(run),
        "new_worker_to_traffic_s": to_traffic_s(run),
        "figures": run.event.figures,
        "generator_cpu_s": run.generator_cpu_s,
        "wall_s": run.wall_s,
    }


def table(summary: dict[str, Any]) -> str:
    """A fixed-width table for one scenario, then its timing figures on one line."""
    lines = [
        f"== {summary['scenario']}  (event window {summary['event_window_s']:.1f}s, "
        f"generator CPU {summary['generator_cpu_s']:.1f}s over {summary['wall_s']:.0f}s wall)"
    ]
    header = ("client", "sent", "failed", "p50 b/d/a ms", "p95 b/d/a ms", "p99 b/d/a ms", "failures")
    rows = [header]
    for kind, data in summary["kinds"].items():
        lat = data["latency_ms"]
        cells = ["/".join(_fmt(lat[p][q]) for p in ("before", "during", "after")) for q in ("p50", "p95", "p99")]
        rows.append(
            (
                kind,
                str(data["sent"]),
                str(data["failed"]),
                *cells,
                ",".join(f"{k}:{v}" for k, v in data["failed_by"].items()) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    extra = {
        "stopped routing to victim s": summary["stopped_routing_s"],
        "passing to traffic s": summary["new_worker_to_traffic_s"],
        **summary["figures"],
    }
    lines.append(
        "   "
        + "; ".join(f"{k} {_fmt(v) if isinstance(v, (int, float)) else v}" for k, v in extra.items() if v is not None)
    )
    return "\n".join(lines)
