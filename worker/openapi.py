"""The OpenAPI 3.1 document of the worker's HTTP interface, built from the limits it enforces."""

from __future__ import annotations

import json
from typing import Any

import falcon

from worker.config import WorkerConfig
from worker.openapi_components import components, header_ref, schema_ref

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain"

_ERROR_REF = schema_ref("Error")


def _response(
    description: str,
    media_type: str,
    schema: dict[str, Any],
    *,
    from_gateway_too: bool = False,
    retry_after: bool = False,
    model_version: bool = False,
) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "X-Request-Id": header_ref("RequestId"),
        "X-Worker-Id": header_ref("WorkerIdIfWorker" if from_gateway_too else "WorkerId"),
    }
    if retry_after:
        headers["Retry-After"] = header_ref("RetryAfter")
    if model_version:
        headers["X-Model-Version"] = header_ref("ModelVersion")
    return {"description": description, "headers": headers, "content": {media_type: {"schema": schema}}}


def _error(description: str, **kwargs: bool) -> dict[str, Any]:
    return _response(description, JSON, _ERROR_REF, **kwargs)


def _inference_errors(config: WorkerConfig) -> dict[str, Any]:
    """What any route that runs the model can answer besides success."""
    if config.queue_deadline_ms > 0:
        overloaded = (
            f"The request could not start within this worker's queue deadline "
            f"({config.queue_deadline_ms:g} ms), or {config.max_queue} requests were already "
            f"waiting when it arrived; retry after Retry-After. The gateway first retries "
            f"it on another worker."
        )
    else:
        overloaded = (
            "Every inference slot of the worker is busy (no queue: NER_QUEUE_DEADLINE_MS=0); "
            "retry after Retry-After. The gateway first retries it on another worker."
        )
    return {
        "400": _error("Malformed JSON, not UTF-8, wrong types, a missing field or empty text."),
        "404": {
            "description": "From the gateway: X-Model-Version names a version no live instance serves; "
            "live_versions lists those that are live.",
            "headers": {"X-Request-Id": header_ref("RequestId")},
            "content": {JSON: {"schema": schema_ref("UnknownVersion")}},
        },
        "413": _error("Body, a text or the batch is over the limits (see the request schema).", from_gateway_too=True),
        "415": _error("Content-Type is not application/json (charset, if given, must be UTF-8)."),
        "429": _error(overloaded, retry_after=True),
        "500": _error("An unexpected failure; the description never carries internal details.", from_gateway_too=True),
        "503": _error(
            "The model failed on this worker, or (from the gateway) no healthy worker is available.",
            from_gateway_too=True,
        ),
        "504": _error("From the gateway: the worker did not answer in time.", from_gateway_too=True),
    }


# Through the gateway, a request may name the model version that must answer it.
_PIN_PARAMETER = {
    "name": "X-Model-Version",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "name@version (a response's model field): the gateway routes the request only to "
    "instances of that version; one that is not live answers 404. Without it the gateway's split "
    "between the live versions decides.",
}


def _json_body(description: str, schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {JSON: {"schema": schema, "example": example}}}


def build_openapi(config: WorkerConfig) -> dict[str, Any]:
    """One description of every route, so clients, the docs and the tests share one truth."""
    limits = (
        f"Limits of this deployment: {config.max_text_chars} characters per text, "
        f"{config.max_batch_texts} texts per batch, {config.max_body_bytes} bytes per body."
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Chinese NER service",
            "version": "1",
            "description": "Named entities (PER, LOC, ORG) in Chinese text. Every response carries "
            "X-Request-Id, and X-Worker-Id when a worker answered. Unknown paths "
            "answer 404 and wrong methods 405, both with the Error schema. " + limits,
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/ner": {
                "post": {
                    "operationId": "recognise",
                    "summary": "Entities of one text or of a batch of texts",
                    "parameters": [_PIN_PARAMETER],
                    "requestBody": _json_body(
                        "Exactly one of text or texts.",
                        {"oneOf": [schema_ref("SingleRequest"), schema_ref("BatchRequest")]},
                        {"text": "张三在北京的清华大学工作。"},
                    ),
                    "responses": {
                        "200": _response(
                            "Entities of the text, or one result per text in input order.",
                            JSON,
                            {"oneOf": [schema_ref("SingleResult"), schema_ref("BatchResult")]},
                            model_version=True,
                        ),
                        **_inference_errors(config),
                    },
                }
            },
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "The original single-instance RaNER web service's request and answer",
                    "parameters": [_PIN_PARAMETER],
                    "requestBody": _json_body("One text.", schema_ref("PredictRequest"), {"text": "张三在北京工作。"}),
                    "responses": {
                        "200": _response(
                            "Entities of the text.", JSON, schema_ref("PredictResult"), model_version=True
                        ),
                        **_inference_errors(config),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Readiness, for Consul's HTTP check; the body never changes",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "Service ID the caller expects; another instance at this "
                            "address answers 503.",
                        }
                    ],
                    "responses": {
                        "200": _response("The model answers a probe.", JSON, schema_ref("Health")),
                        "429": _error(
                            "Ready, but refusing requests for several seconds in a row "
                            "(Consul: warning); a single refusal leaves it at 200.",
                            retry_after=True,
                        ),
                        "503": _error("Not ready, or the id names another instance.", from_gateway_too=True),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of this worker (all its processes)",
                    "responses": {
                        "200": _response("Prometheus text exposition format.", PROMETHEUS_TEXT, {"type": "string"}),
                        "503": _error("No healthy worker is available (from the gateway).", from_gateway_too=True),
                    },
                }
            },
            "/": {
                "get": {
                    "operationId": "page",
                    "summary": "A web page that highlights the entities of pasted text",
                    "responses": {
                        "200": _response("HTML page.", falcon.MEDIA_HTML.split(";")[0], {"type": "string"}),
                        "503": _error("No healthy worker is available (from the gateway).", from_gateway_too=True),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": _response(
                            "OpenAPI 3.1 document.", JSON, {"type": "object", "required": ["openapi", "paths"]}
                        ),
                        "503": _error("No healthy worker is available (from the gateway).", from_gateway_too=True),
                    },
                }
            },
        },
        "components": components(config),
    }


class OpenApiResource:
    """GET /openapi.json: serialised once, since the document only depends on the config."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._body = json.dumps(document, ensure_ascii=False).encode("utf-8")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body
