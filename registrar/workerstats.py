"""Live load of each worker, read from its own /metrics, for the operator's table."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping

import requests
from prometheus_client.parser import text_string_to_metric_families

IN_FLIGHT = "ner_http_requests_in_flight"
REQUESTS = "ner_http_requests"
# Requests a client sent, as opposed to Consul's health checks, scrapes and the page itself.
SERVED_ROUTES = frozenset({"/v1/ner", "/predict"})
DEFAULT_TIMEOUT = 1.0


@dataclass(frozen=True)
class WorkerStats:
    """None means unknown: the worker did not answer in time or exported no such metric."""

    in_flight: int | None = None
    served: int | None = None

    def cells(self) -> tuple[str, str]:
        """Table cells: `?` for what is unknown, never a guess."""
        return _cell(self.in_flight), _cell(self.served)


UNKNOWN = WorkerStats()


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def parse_metrics(text: str) -> WorkerStats:
    """In-flight requests other than the scrape that asked, and API requests answered (any status)."""
    in_flight: float | None = None
    served: float | None = None
    for family in text_string_to_metric_families(text):
        if family.name == IN_FLIGHT:
            in_flight = sum(sample.value for sample in family.samples)
        elif family.name in (REQUESTS, f"{REQUESTS}_total"):  # present, empty, before any request
            served = (served or 0.0) + sum(
                sample.value
                for sample in family.samples
                if sample.name == f"{REQUESTS}_total" and sample.labels.get("route") in SERVED_ROUTES
            )
    # The scrape itself is in flight while the worker renders its metrics.
    return WorkerStats(
        in_flight=None if in_flight is None else max(0, round(in_flight) - 1),
        served=None if served is None else round(served),
    )


def metrics_text(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """A worker's /metrics page, or None when it does not answer with one."""
    try:
        response = requests.get(f"http://{endpoint}/metrics", timeout=timeout)
        response.raise_for_status()
        return response.text
    except requests.RequestException:
        return None


def scrape(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> WorkerStats:
    """One worker's stats, or UNKNOWN when it is down, hung or not a worker."""
    text = metrics_text(endpoint, timeout)
    try:
        return UNKNOWN if text is None else parse_metrics(text)
    except ValueError:
        return UNKNOWN


def scrape_all(endpoints: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT) -> dict[str, WorkerStats]:
    """Every worker at once, so the table waits at most one timeout whatever hangs (ID -> stats)."""
    if not endpoints:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        futures = {key: pool.submit(scrape, endpoint, timeout) for key, endpoint in endpoints.items()}
        return {key: future.result() for key, future in futures.items()}
