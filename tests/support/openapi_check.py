"""Check a real HTTP response against the service's OpenAPI document: status, headers, media type, body."""

from __future__ import annotations

import json
from typing import Any, Mapping

from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:ner:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def documented_statuses(doc: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """Every (method, path, status) the document promises."""
    return {
        (method.upper(), path, status)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }


def _resolve(doc: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local $ref such as #/components/headers/RequestId."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _validate_schema(doc: Mapping[str, Any], pointer: str, instance: Any) -> None:
    """Validate against the schema at pointer inside the document, so its $refs resolve."""
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, DRAFT202012))
    OAS31Validator({"$ref": f"{DOC_URI}#/{pointer}"}, registry=registry).validate(instance)


def validate_response(
    doc: Mapping[str, Any], method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
) -> None:
    """Raise AssertionError (or a jsonschema ValidationError) naming what the document does not allow."""
    operation = doc["paths"].get(path, {}).get(method.lower())
    assert operation is not None, f"{method} {path} is not documented"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method} {path} answered {status}, which is not documented"
    lowered = {name.lower(): value for name, value in headers.items()}

    for name, header in response.get("headers", {}).items():
        header = _resolve(doc, header)
        value = lowered.get(name.lower())
        if value is None:
            assert not header.get("required"), f"{method} {path} {status}: header {name} missing"
            continue
        OAS31Validator(header["schema"]).validate(value)

    media_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    content = response["content"]
    assert media_type in content, f"{method} {path} {status}: Content-Type {media_type!r}, documented {sorted(content)}"
    pointer = _pointer("paths", path, method.lower(), "responses", str(status), "content", media_type, "schema")
    instance: Any = json.loads(body) if media_type == "application/json" else body.decode("utf-8")
    _validate_schema(doc, pointer, instance)
