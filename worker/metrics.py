"""Prometheus metrics that stay correct when gunicorn runs several worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from worker.admission import REASONS

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Queue waits are bounded by NER_QUEUE_DEADLINE_MS (default 500 ms); most are a batch or two.
_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """One set of metric objects per app, in a private registry so tests can build many apps."""

    def __init__(self, multiproc_dir: Path | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "ner_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "ner_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "ner_http_requests_in_flight",
            "Requests being handled right now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.inference_seconds = Histogram(
            "ner_inference_seconds", "Time spent in the model per backend call.", buckets=_LATENCY_BUCKETS, registry=reg
        )
        self.batch_size = Histogram("ner_batch_size", "Texts per backend call.", buckets=_BATCH_BUCKETS, registry=reg)
        self.texts = Counter("ner_texts", "Texts analysed.", registry=reg)
        self.characters = Counter("ner_characters", "Characters analysed.", registry=reg)
        self.overloaded = Counter(
            "ner_overloaded",
            "Requests refused with 429 because the "
            "process was busy, by reason: deadline (could not start within "
            "the queue deadline) or queue_full (the queue was full at arrival).",
            ["reason"],
            registry=reg,
        )
        for reason in REASONS:
            self.overloaded.labels(reason)  # both series exist from the start, at 0
        self.queue_wait = Histogram(
            "ner_queue_wait_seconds",
            "Time a request waited for the model before it started.",
            buckets=_WAIT_BUCKETS,
            registry=reg,
        )
        self.queue_length = Gauge(
            "ner_queue_length", "Requests waiting for the model right now.", registry=reg, multiprocess_mode="livesum"
        )
        self.cache_lookups = Counter(
            "ner_result_cache_lookups",
            "Texts looked up in the result cache, by layer (memory, redis) and result (hit, miss).",
            ["layer", "result"],
            registry=reg,
        )

    def observe_texts(self, texts: list[str]) -> None:
        self.texts.inc(len(texts))
        self.characters.inc(sum(len(t) for t in texts))

    def observe_cache(self, layer: str, result: str, count: int) -> None:
        self.cache_lookups.labels(layer, result).inc(count)

    def observe_refusal(self, reason: str) -> None:
        self.overloaded.labels(reason).inc()

    def observe_queue_length(self, waiting: int) -> None:
        self.queue_length.set(waiting)

    def observe_queue_wait(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)

    def observe_inference(self, batch_size: int, seconds: float) -> None:
        self.inference_seconds.observe(seconds)
        self.batch_size.observe(batch_size)

    def exposition(self) -> bytes:
        """Merge every process's files in multiprocess mode; this process's values otherwise."""
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiproc_dir))
        return generate_latest(merged)


class MetricsMiddleware:
    """Counts and times every request, including errors and unknown paths."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_start = time.perf_counter()
        self._metrics.in_flight.inc()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        start = getattr(req.context, "metrics_start", None)
        if start is None:
            return
        self._metrics.in_flight.dec()
        # The route template, never the raw path: unknown paths must not grow label sets.
        route = req.uri_template or "unmatched"
        method = req.method if req.method in falcon.COMBINED_METHODS else "OTHER"
        self._metrics.requests.labels(method, route, str(resp.status_code)).inc()
        self._metrics.latency.labels(route).observe(time.perf_counter() - start)


class MetricsResource:
    """GET /metrics in the Prometheus text format."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._metrics.exposition()
        resp.content_type = CONTENT_TYPE_LATEST
