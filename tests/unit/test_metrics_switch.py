"""Metrics can be left out of the app (to measure their cost) without changing anything else."""

from __future__ import annotations

from falcon import testing

from tests.unit.fake_backend import FakeBackend, make_config
from worker.app import create_app


def client(**kwargs) -> testing.TestClient:
    return testing.TestClient(create_app(FakeBackend(), make_config(), **kwargs))


def test_metrics_are_on_by_default():
    assert client().simulate_get("/metrics").status_code == 200


def test_without_metrics_there_is_no_metrics_route():
    assert client(with_metrics=False).simulate_get("/metrics").status_code == 404


def test_without_metrics_requests_are_answered_the_same():
    body = {"texts": ["张三在北京", "清华大学"]}
    on = client().simulate_post("/v1/ner", json=body)
    off = client(with_metrics=False).simulate_post("/v1/ner", json=body)
    assert (off.status_code, off.json) == (on.status_code, on.json)
