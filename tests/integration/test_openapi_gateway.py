"""The OpenAPI document served through the gateway is valid and real gateway responses fit it."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import validate as validate_spec

from scripts.localcluster import LocalCluster
from tests.support.openapi_check import validate_response
from tests.support.waiting import wait_for

TEXT = "张三在北京的清华大学工作。"


@pytest.fixture
def doc(two_workers: LocalCluster) -> dict:
    response = requests.get(f"{two_workers.config.gateway_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def call(cluster: LocalCluster, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, cluster.config.gateway_url + path, timeout=15, **kwargs)


def assert_fits(doc: dict, method: str, path: str, response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    validate_response(doc, method, path, response.status_code, response.headers, response.content)


def test_the_document_served_through_the_gateway_is_valid_openapi(doc):
    validate_spec(doc)
    assert set(doc["paths"]) == {"/v1/ner", "/predict", "/health", "/metrics", "/", "/openapi.json"}


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("POST", "/v1/ner", {"json": {"text": TEXT}}, 200),
        ("POST", "/v1/ner", {"json": {"texts": [TEXT, "没有实体吗"]}}, 200),
        ("POST", "/predict", {"json": {"text": TEXT}}, 200),
        ("POST", "/v1/ner", {"data": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/v1/ner", {"json": {"text": "北" * 20_001}}, 413),
        (
            "POST",
            "/v1/ner",
            {"data": b"x" * (2 * 1024 * 1024 + 1), "headers": {"Content-Type": "application/json"}},
            413,
        ),
        ("POST", "/v1/ner", {"data": TEXT.encode(), "headers": {"Content-Type": "text/plain"}}, 415),
        ("GET", "/health", {}, 200),
        ("GET", "/", {}, 200),
        ("GET", "/openapi.json", {}, 200),
    ],
    ids=[
        "ner single",
        "ner batch",
        "predict",
        "malformed json",
        "text over the worker limit",
        "body over the gateway limit",
        "not json",
        "health",
        "page",
        "openapi",
    ],
)
def test_a_real_gateway_response_fits_the_document(doc, two_workers, method, path, kwargs, status):
    assert_fits(doc, method, path, call(two_workers, method, path, **kwargs), status)


def test_the_workers_metrics_are_not_served_through_the_gateway(two_workers):
    # The document describes each worker, which serves /metrics to Prometheus directly.
    response = call(two_workers, "GET", "/metrics")
    assert response.status_code == 404
    assert set(response.json()) >= {"title", "description"}


def test_the_gateways_own_no_worker_answers_fit_the_document(doc, two_workers):
    two_workers.scale(0)
    try:
        wait_for(
            lambda: call(two_workers, "POST", "/v1/ner", json={"text": TEXT}).status_code == 503,
            10,
            "the gateway to answer 503",
        )
        assert_fits(doc, "POST", "/v1/ner", call(two_workers, "POST", "/v1/ner", json={"text": TEXT}), 503)
        assert_fits(doc, "POST", "/predict", call(two_workers, "POST", "/predict", json={"text": TEXT}), 503)
        for path in ("/health", "/", "/openapi.json"):
            assert_fits(doc, "GET", path, call(two_workers, "GET", path), 503)
    finally:
        two_workers.scale(2)
        two_workers.wait_gateway_serving()
