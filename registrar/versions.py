"""Model versions side by side: requests, errors and p95 per version, from each worker's own /metrics."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

from registrar.inventory import Instance
from registrar.workerstats import DEFAULT_TIMEOUT, REQUESTS, SERVED_ROUTES, metrics_text

LATENCY = "ner_http_request_duration_seconds"


@dataclass(frozen=True)
class Counters:
    """Cumulative API requests, 5xx answers and the latency histogram (upper bound -> count)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)

    def __add__(self, other: "Counters") -> "Counters":
        keys = set(self.buckets) | set(other.buckets)
        merged = {k: self.buckets.get(k, 0.0) + other.buckets.get(k, 0.0) for k in keys}
        return Counters(self.requests + other.requests, self.errors + other.errors, merged)

    def since(self, earlier: "Counters") -> "Counters":
        """What happened after `earlier` (a restarted worker's counters start again from 0)."""
        if self.requests < earlier.requests:
            return self
        buckets = {k: max(0.0, v - earlier.buckets.get(k, 0.0)) for k, v in self.buckets.items()}
        return Counters(self.requests - earlier.requests, max(0.0, self.errors - earlier.errors), buckets)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """Seconds, interpolated inside the bucket as Prometheus' histogram_quantile does."""
        ordered = sorted(self.buckets.items())
        if not ordered or ordered[-1][1] <= 0:
            return None
        rank = q * ordered[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in ordered:
            if count >= rank:
                if math.isinf(bound):
                    return lower_bound
                width = count - lower_count
                return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
            lower_bound, lower_count = bound, count
        return None


def parse_counters(text: str) -> Counters:
    """Requests and 5xx of the API routes, and their latency buckets, from one worker's exposition."""
    total = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") not in SERVED_ROUTES:
                continue
            if sample.name == f"{REQUESTS}_total":
                total += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
            elif sample.name == f"{LATENCY}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Counters(total, errors, buckets)


def scrape_counters(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> Counters | None:
    """One worker's counters, or None when it does not answer."""
    text = metrics_text(endpoint, timeout)
    try:
        return None if text is None else parse_counters(text)
    except ValueError:
        return None


def counters_by_instance(instances: Sequence[Instance], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Counters]:
    """Every instance at once (ID -> counters); those that did not answer are left out."""
    if not instances:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(instances))) as pool:
        futures = {i.id: pool.submit(scrape_counters, i.endpoint, timeout) for i in instances}
        results = {key: future.result() for key, future in futures.items()}
    return {key: value for key, value in results.items() if value is not None}


def by_version(
    instances: Sequence[Instance], now: Mapping[str, Counters], before: Mapping[str, Counters] | None = None
) -> dict[str, Counters]:
    """name@version -> the sum of its instances' counters (since `before` when given)."""
    totals: dict[str, Counters] = {}
    for instance in instances:
        current = now.get(instance.id)
        if current is None:
            continue
        if before is not None:
            current = current.since(before.get(instance.id, Counters()))
        totals[instance.model_label] = totals.get(instance.model_label, Counters()) + current
    return totals


@dataclass(frozen=True)
class VersionRow:
    """One line of the side-by-side table."""

    ref: str
    share: float | None
    instances: int
    passing: int
    counters: Counters | None

    def cells(self) -> tuple[str, ...]:
        share = "rest" if self.share is None else f"{self.share:g}%"
        c = self.counters
        if c is None:
            return (self.ref, share, f"{self.passing}/{self.instances}", "?", "?", "?", "?")
        p95 = c.quantile(0.95)
        return (
            self.ref,
            share,
            f"{self.passing}/{self.instances}",
            f"{c.requests:.0f}",
            f"{c.errors:.0f}",
            f"{100 * c.error_ratio:.2f}%",
            "-" if p95 is None else f"{1000 * p95:.1f}",
        )


HEADER = ("VERSION", "SHARE", "PASSING", "REQUESTS", "5XX", "ERROR%", "P95 MS")


def version_rows(
    instances: Sequence[Instance], shares: Mapping[str, float], counters: Mapping[str, Counters]
) -> list[VersionRow]:
    """A row per registered version, and one per version that has a share but no instance."""
    refs = sorted({i.model_label for i in instances} | set(shares))
    rows = []
    for ref in refs:
        mine = [i for i in instances if i.model_label == ref]
        rows.append(
            VersionRow(
                ref=ref,
                share=shares.get(ref),
                instances=len(mine),
                passing=sum(1 for i in mine if i.status in ("passing", "warning")),
                counters=counters.get(ref),
            )
        )
    return rows


def format_table(rows: Sequence[VersionRow]) -> str:
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))).rstrip() for c in cells)
