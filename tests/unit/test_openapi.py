"""/openapi.json describes every route, and every real response of every documented status fits it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import falcon.inspect
import pytest
from falcon import testing
from jsonschema import ValidationError
from openapi_spec_validator import validate as validate_spec

from tests.support.openapi_check import documented_statuses, validate_response
from tests.unit.fake_backend import FakeBackend, make_client, make_config, refuse_until_saturated, refusing_client
from worker.app import create_app
from worker.openapi import build_openapi

# Statuses only the gateway produces (no healthy worker, worker timeout): tests/integration checks them.
GATEWAY_ONLY = {
    ("POST", "/v1/ner", "404"),  # X-Model-Version names no live version
    ("POST", "/predict", "404"),
    ("POST", "/v1/ner", "504"),
    ("POST", "/predict", "504"),
    ("GET", "/metrics", "503"),
    ("GET", "/", "503"),
    ("GET", "/openapi.json", "503"),
}


@contextmanager
def busy(backend: FakeBackend, client: testing.TestClient) -> Iterator[None]:
    """Hold the client's only inference slot with a request that waits for the test to finish."""
    backend.gate = threading.Event()
    holder = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    holder.start()
    assert backend.entered.wait(5)
    try:
        yield
    finally:
        backend.gate.set()
        holder.join(5)


def overloaded(path: str) -> testing.Result:
    backend = FakeBackend()
    client = refusing_client(backend)
    with busy(backend, client):
        if path != "/health":
            return client.simulate_post(path, json={"text": "北京"})
        refuse_until_saturated(client)
        return client.simulate_get("/health")


def failing(switch: str, method: str, path: str, **kwargs) -> testing.Result:
    backend = FakeBackend()
    setattr(backend, switch, True)
    return make_client(backend).simulate_request(method, path, **kwargs)


def post(path: str, **kwargs) -> Callable[[], testing.Result]:
    return lambda: make_client().simulate_post(path, **kwargs)


def get(path: str, **kwargs) -> Callable[[], testing.Result]:
    return lambda: make_client().simulate_get(path, **kwargs)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    act: Callable[[], testing.Result]


CASES = {
    "ner single": Case("POST", "/v1/ner", 200, post("/v1/ner", json={"text": "张三在北京"})),
    "ner batch": Case("POST", "/v1/ner", 200, post("/v1/ner", json={"texts": ["张三", "没有"]})),
    "ner malformed json": Case(
        "POST", "/v1/ner", 400, post("/v1/ner", body="{", headers={"Content-Type": "application/json"})
    ),
    "ner text too long": Case("POST", "/v1/ner", 413, post("/v1/ner", json={"text": "北" * 51})),
    "ner not json": Case("POST", "/v1/ner", 415, post("/v1/ner", body="北京", headers={"Content-Type": "text/plain"})),
    "ner overloaded": Case("POST", "/v1/ner", 429, lambda: overloaded("/v1/ner")),
    "ner unexpected bug": Case(
        "POST", "/v1/ner", 500, lambda: failing("crash_predict", "POST", "/v1/ner", json={"text": "北京"})
    ),
    "ner model failure": Case(
        "POST", "/v1/ner", 503, lambda: failing("fail_predict", "POST", "/v1/ner", json={"text": "北京"})
    ),
    "predict": Case("POST", "/predict", 200, post("/predict", json={"text": "张三在北京"})),
    "predict missing text": Case("POST", "/predict", 400, post("/predict", json={"txt": "北京"})),
    "predict text too long": Case("POST", "/predict", 413, post("/predict", json={"text": "北" * 51})),
    "predict not json": Case(
        "POST", "/predict", 415, post("/predict", body="北京", headers={"Content-Type": "text/plain"})
    ),
    "predict overloaded": Case("POST", "/predict", 429, lambda: overloaded("/predict")),
    "predict unexpected bug": Case(
        "POST", "/predict", 500, lambda: failing("crash_predict", "POST", "/predict", json={"text": "北京"})
    ),
    "predict model failure": Case(
        "POST", "/predict", 503, lambda: failing("fail_predict", "POST", "/predict", json={"text": "北京"})
    ),
    "health ready": Case("GET", "/health", 200, get("/health")),
    "health shedding load": Case("GET", "/health", 429, lambda: overloaded("/health")),
    "health not ready": Case("GET", "/health", 503, lambda: failing("fail_probe", "GET", "/health")),
    "metrics": Case("GET", "/metrics", 200, get("/metrics")),
    "page": Case("GET", "/", 200, get("/")),
    "openapi": Case("GET", "/openapi.json", 200, get("/openapi.json")),
}


@pytest.fixture(scope="module")
def doc() -> dict:
    return make_client().simulate_get("/openapi.json").json


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)


def test_every_route_of_the_app_is_documented_and_nothing_else():
    app = create_app(FakeBackend(), make_config())
    routed = {
        (method, route.path)
        for route in falcon.inspect.inspect_routes(app)
        for method in (m.method for m in route.methods if m.internal is False)
    }
    documented = {(method, path) for method, path, _ in documented_statuses(build_openapi(make_config()))}
    assert routed == documented


def test_the_limits_in_the_document_are_the_configured_ones():
    doc = build_openapi(make_config(max_text_chars=7, max_batch_texts=5))
    schemas = doc["components"]["schemas"]
    assert schemas["SingleRequest"]["properties"]["text"]["maxLength"] == 7
    assert schemas["BatchRequest"]["properties"]["texts"]["maxItems"] == 5


def test_every_status_a_worker_can_answer_has_a_case_below(doc):
    covered = {(case.method, case.path, str(case.status)) for case in CASES.values()}
    assert covered == documented_statuses(doc) - GATEWAY_ONLY


@pytest.mark.parametrize("name", CASES)
def test_the_real_response_fits_the_document(doc, name):
    case = CASES[name]
    result = case.act()
    assert result.status_code == case.status, result.text
    validate_response(doc, case.method, case.path, result.status_code, result.headers, result.content)


def test_a_response_the_document_does_not_allow_is_caught(doc):
    result = make_client().simulate_post("/v1/ner", json={"text": "张三"})
    with pytest.raises(ValidationError):  # "model" is missing
        validate_response(doc, "POST", "/v1/ner", 200, result.headers, b'{"entities": []}')


def test_an_undocumented_status_is_caught(doc):
    result = make_client().simulate_get("/health")
    with pytest.raises(AssertionError, match="418"):
        validate_response(doc, "GET", "/health", 418, result.headers, result.content)
