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
from worker.resources import (HealthResource, IndexResource, NerResource, PredictResource,
                              Predictor)

log = logging.getLogger("worker.app")

INDEX_PAGE = Path(__file__).resolve().parent / "static" / "index.html"


def create_app(backend: NerBackend, config: WorkerConfig) -> falcon.App:
    """Wire resources to a ready backend; everything it needs is passed in, so tests can fake it."""
    metrics = Metrics(config.metrics_dir)
    app = falcon.App(middleware=[
        # First in, last out: its response hook sees the final status, including errors.
        RequestContextMiddleware(config.instance_id),
        MetricsMiddleware(metrics),
    ])
    install_error_handling(app)

    predictor = Predictor(backend, metrics, config.max_inflight)
    app.add_route("/v1/ner", NerResource(predictor, config.max_body_bytes,
                                         config.max_text_chars, config.max_batch_texts))
    app.add_route("/predict", PredictResource(predictor, config.max_body_bytes,
                                              config.max_text_chars))
    app.add_route("/health", HealthResource(backend, config.health_cache_seconds,
                                              instance_id=config.instance_id))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/", IndexResource(INDEX_PAGE))
    return app


def get_app() -> falcon.App:
    """gunicorn's entry point (`worker.app:get_app()`): runs in each worker process, after fork."""
    configure_logging()
    config = load_config()
    # Imported here: the model stack is heavy and only a serving process needs it.
    from worker.backends import load_backend

    backend = load_backend(config.backend, config.model_dir, name=config.model_name,
                           version=config.model_version, torch_threads=config.torch_threads)
    log.info("model loaded", extra={"model": f"{backend.name}@{backend.version}",
                                    "model_dir": str(config.model_dir),
                                    "worker_id": config.instance_id})
    return create_app(backend, config)
