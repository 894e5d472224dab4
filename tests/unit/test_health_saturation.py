"""A worker that is shedding load says so on /health (429, Consul "warning") with a fixed body."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from tests.unit.fake_backend import FakeBackend, make_client
from worker.errors import Overloaded
from worker.metrics import Metrics
from worker.resources import Predictor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def saturated_client() -> Iterator[tuple]:
    """A client whose only inference slot is held by a request that waits on a gate."""
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = make_client(backend, max_inflight=1, health_cache_seconds=0)
    holder = threading.Thread(target=client.simulate_post, args=("/v1/ner",),
                              kwargs={"json": {"text": "北京"}})
    holder.start()
    assert backend.entered.wait(5)
    try:
        yield client, backend
    finally:
        backend.gate.set()
        holder.join(5)


def test_health_stays_200_while_slots_are_busy_but_nothing_was_refused(saturated_client):
    client, _ = saturated_client
    assert client.simulate_get("/health").status_code == 200


def test_health_is_429_json_with_retry_after_once_the_worker_refused_inference(saturated_client):
    client, _ = saturated_client
    assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 429
    result = client.simulate_get("/health")
    assert result.status_code == 429
    assert result.headers["Retry-After"] == "1"
    assert set(result.json) == {"title", "description"}


def test_saturated_health_body_is_identical_across_calls(saturated_client):
    client, _ = saturated_client
    bodies = set()
    for _ in range(3):
        client.simulate_post("/v1/ner", json={"text": "北京"})
        bodies.add(client.simulate_get("/health").text)
    assert len(bodies) == 1


def test_health_is_503_not_429_when_the_model_is_broken_as_well(saturated_client):
    client, backend = saturated_client
    client.simulate_post("/v1/ner", json={"text": "北京"})
    backend.fail_probe = True
    assert client.simulate_get("/health").status_code == 503


def test_predictor_is_saturated_only_within_the_window_after_a_refusal():
    backend, clock = FakeBackend(), Clock()
    backend.gate = threading.Event()
    predictor = Predictor(backend, Metrics(None), max_inflight=1, saturation_seconds=2.0, clock=clock)
    holder = threading.Thread(target=predictor.predict, args=(["北京"],))
    holder.start()
    assert backend.entered.wait(5)
    try:
        assert not predictor.saturated()
        with pytest.raises(Overloaded):
            predictor.predict(["北京"])
        assert predictor.saturated()
        clock.now += 1.9
        assert predictor.saturated()
        clock.now += 0.2
        assert not predictor.saturated()
    finally:
        backend.gate.set()
        holder.join(5)
