"""Domain errors and the single place that turns any failure into a JSON HTTP response."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from worker.backends.base import BackendError

log = logging.getLogger("worker.errors")


class NerError(Exception):
    """A request the service refuses; carries what the client needs to fix or retry it."""

    status: str = falcon.HTTP_400
    title: str = "Bad Request"

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = headers or {}


class InvalidRequest(NerError):
    status, title = falcon.HTTP_400, "Invalid Request"


class PayloadTooLarge(NerError):
    status, title = falcon.HTTP_413, "Payload Too Large"


class UnsupportedMediaType(NerError):
    status, title = falcon.HTTP_415, "Unsupported Media Type"


class Overloaded(NerError):
    status, title = falcon.HTTP_429, "Too Many Requests"

    def __init__(self, description: str, *, retry_after: int = 1) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)})


class NotReady(NerError):
    status, title = falcon.HTTP_503, "Service Unavailable"


# Falcon's own errors often come without a description; the contract promises one.
_DEFAULT_DESCRIPTIONS = {
    404: "No resource at this path.",
    405: "This method is not allowed on this path.",
    500: "The server failed to handle the request.",
}


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Always JSON, whatever the client accepts, so every consumer can parse every error."""
    title = error.title or ""
    code = error.status_code
    if title.startswith(f"{code} "):  # Falcon's default titles are "404 Not Found"
        title = title[len(f"{code} ") :]
    description = error.description or _DEFAULT_DESCRIPTIONS.get(code) or title
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"title": title, "description": description}, ensure_ascii=False)


def _handle_domain_error(req: falcon.Request, resp: falcon.Response, ex: NerError, params: dict[str, Any]) -> None:
    raise falcon.HTTPError(ex.status, title=ex.title, description=ex.description, headers=ex.headers or None)


def _handle_backend_error(req: falcon.Request, resp: falcon.Response, ex: BackendError, params: dict[str, Any]) -> None:
    """The model itself is broken (its probe fails too): 503, so the gateway retries elsewhere."""
    log.error("inference failed", exc_info=ex, extra=_request_fields(req))
    raise falcon.HTTPError(
        falcon.HTTP_503, title="Service Unavailable", description="inference failed on this worker; retry"
    )


def _handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    """Log the traceback for operators; the client only learns that it failed."""
    log.error("unhandled error", exc_info=ex, extra=_request_fields(req))
    raise falcon.HTTPError(falcon.HTTP_500, title="Internal Server Error", description=_DEFAULT_DESCRIPTIONS[500])


def _request_fields(req: falcon.Request) -> dict[str, Any]:
    return {"request_id": getattr(req.context, "request_id", None), "method": req.method, "path": req.path}


def install_error_handling(app: falcon.App) -> None:
    """Register every mapping at once; Falcon picks the most specific handler for an exception."""
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(BackendError, _handle_backend_error)
    app.add_error_handler(NerError, _handle_domain_error)
    app.set_error_serializer(serialize_error)
