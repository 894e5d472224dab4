"""/metrics shows the admission queue: waits before the model, its length, refusals by reason."""

from __future__ import annotations

import threading

from tests.unit.fake_backend import FakeBackend, make_client
from worker.metrics import Metrics


def test_both_refusal_reasons_are_exposed_at_zero_before_any_refusal():
    text = make_client().simulate_get("/metrics").text
    assert 'ner_overloaded_total{reason="deadline"} 0.0' in text
    assert 'ner_overloaded_total{reason="queue_full"} 0.0' in text


def test_a_request_that_started_at_once_is_a_zero_wait():
    client = make_client()
    client.simulate_post("/v1/ner", json={"text": "北京"})
    text = client.simulate_get("/metrics").text
    assert "ner_queue_wait_seconds_count 1.0" in text
    assert 'ner_queue_wait_seconds_bucket{le="0.0005"} 1.0' in text


def test_a_request_that_waited_is_in_the_bucket_of_its_wait():
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = make_client(backend, max_inflight=1, queue_deadline_ms=5000)
    holder = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    holder.start()
    assert backend.entered.wait(5)
    waiter = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    waiter.start()
    threading.Timer(0.06, backend.gate.set).start()
    holder.join(5)
    waiter.join(5)
    text = client.simulate_get("/metrics").text
    assert "ner_queue_wait_seconds_count 2.0" in text
    assert 'ner_queue_wait_seconds_bucket{le="0.05"} 1.0' in text  # the holder; the waiter waited longer
    assert 'ner_queue_wait_seconds_bucket{le="0.25"} 2.0' in text


def test_queue_length_is_a_gauge_of_waiting_requests():
    metrics = Metrics(None)
    metrics.observe_queue_length(7)
    assert b"ner_queue_length 7.0" in metrics.exposition()
    metrics.observe_queue_length(0)
    assert b"ner_queue_length 0.0" in metrics.exposition()
