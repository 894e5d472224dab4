"""The operator's table reads each worker's load from its /metrics, and shows `?` rather than waiting."""

from __future__ import annotations

import socket
import threading
import time

from registrar.cli import print_table
from registrar.inventory import Instance
from registrar.workerstats import UNKNOWN, WorkerStats, parse_metrics, scrape, scrape_all
from tests.unit.fake_backend import FakeBackend, make_client


def scrape_text(client) -> str:
    return client.simulate_get("/metrics").text


def instance(service_id: str) -> Instance:
    return Instance(
        id=service_id,
        service="ner-worker",
        address="10.0.0.5",
        port=8001,
        status="passing",
        model="raner",
        version="abc",
        node="node-a",
        node_address="10.0.0.1",
    )


def test_served_counts_api_requests_of_any_status_but_not_health_checks_or_scrapes():
    client = make_client()
    client.simulate_post("/v1/ner", json={"text": "北京"})
    client.simulate_post("/v1/ner", json={"texts": ["北京", "张三"]})
    client.simulate_post("/v1/ner", json={"text": ""})
    client.simulate_post("/predict", json={"text": "张三"})
    client.simulate_get("/health")
    client.simulate_get("/")
    client.simulate_get("/metrics")
    assert parse_metrics(scrape_text(client)).served == 4


def test_an_idle_worker_has_nothing_in_flight_although_the_scrape_itself_is():
    assert parse_metrics(scrape_text(make_client())) == WorkerStats(in_flight=0, served=0)


def test_a_request_waiting_for_the_model_is_in_flight():
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = make_client(backend)
    holder = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    holder.start()
    try:
        assert backend.entered.wait(5)
        assert parse_metrics(scrape_text(client)).in_flight == 1
    finally:
        backend.gate.set()
        holder.join(5)


def test_metrics_without_the_worker_families_are_unknown_not_zero():
    assert parse_metrics("# HELP other_total x\n# TYPE other_total counter\nother_total 3.0\n") == UNKNOWN


def test_multiprocess_style_samples_of_the_same_family_are_added_up():
    text = (
        "# TYPE ner_http_requests_in_flight gauge\nner_http_requests_in_flight 3.0\n"
        "# TYPE ner_http_requests_total counter\n"
        'ner_http_requests_total{method="POST",route="/v1/ner",status="200"} 7.0\n'
        'ner_http_requests_total{method="POST",route="/v1/ner",status="429"} 2.0\n'
        'ner_http_requests_total{method="POST",route="/predict",status="200"} 1.0\n'
        'ner_http_requests_total{method="GET",route="/health",status="200"} 50.0\n'
    )
    assert parse_metrics(text) == WorkerStats(in_flight=2, served=10)


def test_a_worker_that_refuses_connections_is_unknown():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert scrape(f"127.0.0.1:{port}", timeout=0.5) == UNKNOWN


def test_a_hung_worker_costs_one_timeout_for_the_whole_table_not_one_each():
    with socket.socket() as hung:  # accepts connections (backlog) but never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        endpoint = f"127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        stats = scrape_all({"a": endpoint, "b": endpoint, "c": endpoint}, timeout=0.5)
        took = time.monotonic() - started
    assert stats == {"a": UNKNOWN, "b": UNKNOWN, "c": UNKNOWN}
    assert took < 1.4


def test_the_table_shows_numbers_for_answering_workers_and_a_question_mark_otherwise(capsys):
    print_table([instance("w-1"), instance("w-2")], {"w-1": WorkerStats(in_flight=2, served=15)})
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "ADDRESS", "STATUS", "MODEL", "IN-FLIGHT", "SERVED", "NODE"]
    assert first.split() == ["w-1", "10.0.0.5:8001", "passing", "raner@abc", "2", "15", "node-a"]
    assert second.split() == ["w-2", "10.0.0.5:8001", "passing", "raner@abc", "?", "?", "node-a"]
