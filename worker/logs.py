"""Worker logs in the cluster's one shape (registrar/logformat.py), and one line per request."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import TextIO

import falcon

from registrar.logformat import formatter_for

# nginx's $request_id is 32 hex digits; accept similar tokens, refuse anything that could forge log lines.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_log = logging.getLogger("worker.request")


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the root logger to stderr in the format that suits whoever reads it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(handler.stream))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def adopt_library_logger(name: str) -> None:
    """Route a library logger that writes to stderr by itself through the root's handlers, once imported.

    ModelScope's get_logger() gives the "modelscope" logger a stderr handler of its own (its own
    text format) on the first call, made by `import modelscope`, and turns propagation off on
    every call; it never adds that handler again, so replacing it after the import lasts.
    """
    handlers = logging.getLogger().handlers
    if handlers:  # nothing configured (a script, a test): leave the library as it is
        logging.getLogger(name).handlers[:] = handlers


class RequestContextMiddleware:
    """Tags every response with who served it and logs one line per request."""

    def __init__(self, worker_id: str, quiet_paths: tuple[str, ...] = ("/health", "/metrics")) -> None:
        self._worker_id = worker_id
        # Consul checks /health every second: successful probes and scrapes log at DEBUG.
        self._quiet_paths = frozenset(quiet_paths)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id")
        req.context.request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        req.context.started = time.perf_counter()
        req.context.texts = 0  # resources fill these in for the request log
        req.context.chars = 0

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        resp.set_header("X-Request-Id", request_id)
        resp.set_header("X-Worker-Id", self._worker_id)
        started = getattr(req.context, "started", time.perf_counter())
        quiet = req.path in self._quiet_paths and resp.status_code < 400
        request_log.log(
            logging.DEBUG if quiet else logging.INFO,
            "request",
            extra={
                "request_id": request_id,
                "worker_id": self._worker_id,
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "texts": getattr(req.context, "texts", 0),
                "chars": getattr(req.context, "chars", 0),
            },
        )
