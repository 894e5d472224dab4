"""The Falcon application: a pure factory for tests and a thin entry point for gunicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon

from worker.backends.base import NerBackend
from worker.config import WorkerConfig, load_config
from worker.errors import install_error_handling
from worker.logs import RequestContextMiddleware, configure_logging
from worker.metrics import Metrics, MetricsMiddleware, MetricsResource
from worker.openapi import OpenApiResource, build_openapi
from worker.predictor import Predictor
from worker.resources import HealthResource, IndexResource, NerResource, PredictResource
from worker.saturation import SustainedRefusals

log = logging.getLogger("worker.app")

INDEX_PAGE = Path(__file__).resolve().parent / "static" / "index.html"


def create_app(backend: NerBackend, config: WorkerConfig, *, with_metrics: bool = True) -> falcon.App:
    """Wire resources to a ready backend; everything it needs is passed in, so tests can fake it.

    with_metrics=False leaves out the metrics middleware, counters and /metrics, so the cost of
    metrics can be measured against an otherwise identical app (bench/metrics_overhead.py).
    """
    metrics = Metrics(config.metrics_dir) if with_metrics else None
    if metrics is not None:
        backend.set_cache_observer(metrics.observe_cache)
        backend.set_queue_observer(metrics)
    middleware: list[object] = [RequestContextMiddleware(config.instance_id)]
    if metrics is not None:
        # After the request context: first in, last out, so it sees the final status, errors included.
        middleware.append(MetricsMiddleware(metrics))
    app = falcon.App(middleware=middleware)
    install_error_handling(app)

    refusals = SustainedRefusals(
        window_seconds=config.saturation_window_seconds,
        windows=config.saturation_windows,
        min_ratio=config.saturation_min_ratio,
    )
    predictor = Predictor(
        backend, metrics, max_inflight=config.max_inflight, policy=config.admission_policy(), refusals=refusals
    )
    app.add_route(
        "/v1/ner", NerResource(predictor, config.max_body_bytes, config.max_text_chars, config.max_batch_texts)
    )
    app.add_route("/predict", PredictResource(predictor, config.max_body_bytes, config.max_text_chars))
    app.add_route(
        "/health",
        HealthResource(
            backend, config.health_cache_seconds, instance_id=config.instance_id, saturated=predictor.saturated
        ),
    )
    if metrics is not None:
        app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/", IndexResource(INDEX_PAGE))
    app.add_route("/openapi.json", OpenApiResource(build_openapi(config)))
    return app


def get_app() -> falcon.App:
    """gunicorn's entry point (`worker.app:get_app()`): runs in each worker process, after fork."""
    configure_logging()
    config = load_config()
    # Imported here: the model stack is heavy and only a serving process needs it.
    from worker.backends import build_backend

    backend = build_backend(config)
    log.info(
        "model loaded",
        extra={
            "model": f"{backend.name}@{backend.version}",
            "model_dir": str(config.model_dir),
            "worker_id": config.instance_id,
        },
    )
    return create_app(backend, config)
