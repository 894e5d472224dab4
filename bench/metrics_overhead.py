"""What the Prometheus metrics cost per request: the same in-process app with metrics on and off.

    .venv/bin/python -m bench.metrics_overhead                     # fake model, in-memory metrics
    .venv/bin/python -m bench.metrics_overhead --multiprocess      # metrics in mmap files, as gunicorn runs
    .venv/bin/python -m bench.metrics_overhead --model .local/models/raner-tiny-random

The two apps answer alternating rounds of the same request, so drift in machine load hits both.
The WSGI app is called directly (no HTTP, no socket): what is left is Falcon, our middleware and
the model, which makes the metrics' share as large as it can be.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from worker.backends.base import NerBackend  # imports no prometheus_client: the metrics mode is still open

REPO_ROOT = Path(__file__).resolve().parents[1]

BODY = '{"text": "张三在北京的清华大学工作。"}'.encode("utf-8")


class TinyBackend(NerBackend):
    """Answers instantly, so the measurement is all framework and metrics."""

    name, version = "bench", "0"

    def predict_batch(self, texts: list[str]) -> list[list[Any]]:
        return [[] for _ in texts]

    def probe(self) -> None:
        return None


def environ() -> dict[str, Any]:
    """A fresh WSGI environ for POST /v1/ner (the body stream is consumed by each request)."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/ner",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def time_round(app: Callable, requests: int) -> float:
    """Seconds per request over one round; fails loudly if the app stops answering 200."""
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.perf_counter()
    for _ in range(requests):
        b"".join(app(environ(), start_response))
    took = time.perf_counter() - started
    if any(not s.startswith("200") for s in statuses):
        raise RuntimeError(f"unexpected statuses: {sorted(set(statuses))}")
    return took / requests


def build_apps(model_dir: Path | None) -> tuple[Callable, Callable, str]:
    """Imported here: multiprocess mode must be chosen before prometheus_client is imported."""
    import logging

    from worker.app import create_app
    from worker.config import WorkerConfig

    logging.getLogger("worker.request").setLevel(logging.WARNING)  # no log I/O in either app
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    config = WorkerConfig(metrics_dir=Path(metrics_dir) if metrics_dir else None, max_inflight=1)
    if model_dir is None:
        backend: Any = TinyBackend()
        label = "fake model (answers instantly)"
    else:
        from worker.backends import load_backend

        backend = load_backend("raner", model_dir, torch_threads=1)
        label = f"model {model_dir.name} (1 torch thread)"
    return create_app(backend, config), create_app(backend, config, with_metrics=False), label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per app, alternating (default 7)")
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="metrics in PROMETHEUS_MULTIPROC_DIR files, as the gunicorn workers run them",
    )
    parser.add_argument("--model", type=Path, help="a RaNER model directory instead of the fake model")
    args = parser.parse_args(argv)

    if args.multiprocess:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ner-metrics-bench-")
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with_metrics, without_metrics, label = build_apps(args.model)

    time_round(with_metrics, 50)  # warm both: imports, first-request paths, caches
    time_round(without_metrics, 50)
    on: list[float] = []
    off: list[float] = []
    for _ in range(args.rounds):
        on.append(time_round(with_metrics, args.requests))
        off.append(time_round(without_metrics, args.requests))

    on_us, off_us = statistics.median(on) * 1e6, statistics.median(off) * 1e6
    mode = "multiprocess (mmap files)" if args.multiprocess else "in-memory"
    print(f"POST /v1/ner, {label}, metrics {mode}")
    print(f"{args.rounds} alternating rounds x {args.requests} requests per app; median of rounds")
    print(f"metrics on : {on_us:8.1f} us/request  (rounds {min(on) * 1e6:.1f}-{max(on) * 1e6:.1f})")
    print(f"metrics off: {off_us:8.1f} us/request  (rounds {min(off) * 1e6:.1f}-{max(off) * 1e6:.1f})")
    print(f"overhead   : {on_us - off_us:8.1f} us/request  ({(on_us / off_us - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
