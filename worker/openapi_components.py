"""The OpenAPI document's reusable parts: the JSON schemas of bodies and the response headers."""

from __future__ import annotations

from typing import Any

from worker.config import WorkerConfig


def schema_ref(name: str) -> dict[str, str]:
    """A reference to one of the schemas below."""
    return {"$ref": f"#/components/schemas/{name}"}


def header_ref(name: str) -> dict[str, str]:
    """A reference to one of the headers below."""
    return {"$ref": f"#/components/headers/{name}"}


def _schemas(config: WorkerConfig) -> dict[str, Any]:
    """Request and answer bodies; text limits come from the config the worker enforces."""
    text = {
        "type": "string",
        "minLength": 1,
        "maxLength": config.max_text_chars,
        "description": "Unicode text; whitespace-only text is valid and has no entities.",
    }
    return {
        "Entity": {
            "type": "object",
            "required": ["type", "start", "end", "span"],
            "additionalProperties": False,
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["PER", "LOC", "ORG"],
                    "description": "PER person, LOC place, ORG organisation.",
                },
                "start": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Offset of the first character (Unicode code points).",
                },
                "end": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Offset after the last character: text[start:end] == span.",
                },
                "span": {"type": "string", "minLength": 1},
            },
        },
        "Entities": {"type": "array", "items": schema_ref("Entity"), "description": "Ordered by start offset."},
        "Model": {
            "type": "string",
            "pattern": "^.+@.*$",
            "examples": ["lac-msra-lstm@3f2a9c1d0b7e"],
            "description": "name@version of the model that answered.",
        },
        "SingleRequest": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": text},
        },
        "BatchRequest": {
            "type": "object",
            "required": ["texts"],
            "additionalProperties": False,
            "properties": {
                "texts": {"type": "array", "minItems": 1, "maxItems": config.max_batch_texts, "items": text}
            },
        },
        "SingleResult": {
            "type": "object",
            "required": ["entities", "model"],
            "additionalProperties": False,
            "properties": {"entities": schema_ref("Entities"), "model": schema_ref("Model")},
        },
        "BatchResult": {
            "type": "object",
            "required": ["results", "model"],
            "additionalProperties": False,
            "properties": {
                "results": {
                    "type": "array",
                    "description": "One item per input text, in input order.",
                    "items": {
                        "type": "object",
                        "required": ["entities"],
                        "additionalProperties": False,
                        "properties": {"entities": schema_ref("Entities")},
                    },
                },
                "model": schema_ref("Model"),
            },
        },
        "PredictRequest": {
            "type": "object",
            "required": ["text"],
            "properties": {"text": text},
        },
        "PredictResult": {
            "type": "object",
            "required": ["output"],
            "additionalProperties": False,
            "properties": {"output": schema_ref("Entities")},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {"status": {"const": "ok"}},
        },
        "Error": {
            "type": "object",
            "required": ["title", "description"],
            "additionalProperties": False,
            "properties": {
                "title": {"type": "string", "minLength": 1},
                "description": {"type": "string", "minLength": 1},
            },
        },
        "UnknownVersion": {
            "type": "object",
            "required": ["title", "description", "live_versions"],
            "additionalProperties": False,
            "properties": {
                "title": {"type": "string", "minLength": 1},
                "description": {"type": "string", "minLength": 1},
                "live_versions": {"type": "array", "items": {"type": "string"}},
            },
        },
    }


def _headers() -> dict[str, Any]:
    """Headers every answer carries, and Retry-After on refusals."""
    return {
        "RequestId": {
            "description": "The client's X-Request-Id when it is a sane token, otherwise one the gateway "
            "or worker generated. Quote it when reporting a problem.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
        },
        "WorkerId": {
            "description": "Consul service ID of the worker instance that answered.",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        },
        "ModelVersion": {
            "description": "The model version that answered, name@version: the same as the body's model "
            "field. Send it back as X-Model-Version to pin later requests to that version.",
            "required": True,
            "schema": {"type": "string", "minLength": 3},
        },
        "WorkerIdIfWorker": {
            "description": "Consul service ID of the worker that answered; absent when the gateway "
            "answered itself (no healthy worker, body over the gateway's limit, "
            "gateway failure).",
            "required": False,
            "schema": {"type": "string", "minLength": 1},
        },
        "RetryAfter": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
    }


def components(config: WorkerConfig) -> dict[str, Any]:
    """The document's `components`, which its paths refer to."""
    return {"schemas": _schemas(config), "headers": _headers()}
