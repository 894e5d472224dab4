"""The worker's HTTP contracts, against a fake model."""

from __future__ import annotations

import re
import threading

from tests.unit.fake_backend import FakeBackend, make_client


def ner(client, body, **kwargs):
    return client.simulate_post("/v1/ner", json=body, **kwargs)


# ------------------------------------------------------------------ POST /v1/ner


def test_single_text_returns_entities_and_model():
    result = ner(make_client(), {"text": "张三在北京"})
    assert result.status_code == 200
    assert result.json == {
        "entities": [
            {"type": "PER", "start": 0, "end": 2, "span": "张三"},
            {"type": "LOC", "start": 3, "end": 5, "span": "北京"},
        ],
        "model": "fake@0.1",
    }


def test_entity_offsets_slice_the_original_text():
    text = "我和张三去了北京，又回到北京。"
    for entity in ner(make_client(), {"text": text}).json["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["span"]


def test_batch_results_keep_input_order():
    texts = ["去北京", "没有实体", "张三"]
    result = ner(make_client(), {"texts": texts})
    assert result.status_code == 200
    spans = [[e["span"] for e in item["entities"]] for item in result.json["results"]]
    assert spans == [["北京"], [], ["张三"]]
    assert result.json["model"] == "fake@0.1"


def test_batch_is_sent_to_the_model_in_one_call():
    backend = FakeBackend()
    ner(make_client(backend), {"texts": ["北京", "张三", "清华大学"]})
    assert backend.batches == [["北京", "张三", "清华大学"]]


def test_whitespace_only_text_is_valid_with_no_entities():
    result = ner(make_client(), {"text": " \n\u3000\t"})
    assert result.status_code == 200
    assert result.json["entities"] == []


def test_whitespace_only_text_never_reaches_the_model():
    backend = FakeBackend()
    result = ner(make_client(backend), {"texts": ["  ", "北京", "\n"]})
    assert [len(r["entities"]) for r in result.json["results"]] == [0, 1, 0]
    assert backend.batches == [["北京"]]


def test_response_is_utf8_json_with_chinese_unescaped():
    result = ner(make_client(), {"text": "北京"})
    assert result.headers["Content-Type"].startswith("application/json")
    assert "北京".encode("utf-8") in result.content


def test_content_type_with_charset_is_accepted():
    result = make_client().simulate_post(
        "/v1/ner", body='{"text": "北京"}'.encode(), headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert result.status_code == 200


def test_text_outside_the_basic_plane_keeps_code_point_offsets():
    text = "😀𠀀北京"
    [entity] = ner(make_client(), {"text": text}).json["entities"]
    assert (entity["start"], entity["end"]) == (2, 4)


# ------------------------------------------------------------------ POST /predict


def test_predict_keeps_the_original_service_shape():
    result = make_client().simulate_post("/predict", json={"text": "张三"})
    assert result.status_code == 200
    assert result.json == {"output": [{"type": "PER", "start": 0, "end": 2, "span": "张三"}]}


def test_predict_without_text_is_400():
    result = make_client().simulate_post("/predict", json={"texts": ["张三"]})
    assert result.status_code == 400
    assert "text" in result.json["description"]


# ------------------------------------------------------------------ GET /health


def test_health_is_ok_when_the_model_answers_a_probe():
    result = make_client().simulate_get("/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_health_for_this_instance_id_is_ok():
    result = make_client(instance_id="ner-worker-a").simulate_get("/health", params={"id": "ner-worker-a"})
    assert result.status_code == 200


def test_health_for_another_instance_id_is_503_so_a_dead_instance_cannot_pass_on_its_successor():
    result = make_client(instance_id="ner-worker-b").simulate_get("/health", params={"id": "ner-worker-a"})
    assert result.status_code == 503
    assert "another instance" in result.json["description"]


def test_health_is_503_json_when_the_probe_fails():
    backend = FakeBackend()
    backend.fail_probe = True
    result = make_client(backend).simulate_get("/health")
    assert result.status_code == 503
    assert set(result.json) == {"title", "description"}


def test_health_body_is_identical_across_calls():
    client = make_client(health_cache_seconds=0)
    bodies = {client.simulate_get("/health").text for _ in range(3)}
    assert len(bodies) == 1


def test_health_failure_body_is_identical_across_calls():
    backend = FakeBackend()
    backend.fail_probe = True
    client = make_client(backend, health_cache_seconds=0)
    bodies = {client.simulate_get("/health").text for _ in range(3)}
    assert len(bodies) == 1


def test_health_recovers_when_the_probe_succeeds_again():
    backend = FakeBackend()
    backend.fail_probe = True
    client = make_client(backend, health_cache_seconds=0)
    assert client.simulate_get("/health").status_code == 503
    backend.fail_probe = False
    assert client.simulate_get("/health").status_code == 200


def test_health_checks_in_quick_succession_share_one_probe():
    backend = FakeBackend()
    client = make_client(backend, health_cache_seconds=60)
    for _ in range(5):
        client.simulate_get("/health")
    assert backend.probe_calls == 1


def test_health_is_answered_while_a_prediction_runs():
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = make_client(backend, max_inflight=1)
    slow = threading.Thread(target=ner, args=(client, {"text": "北京"}))
    slow.start()
    try:
        assert backend.entered.wait(5)
        assert client.simulate_get("/health").status_code == 200
    finally:
        backend.gate.set()
        slow.join(5)


# ------------------------------------------------------------------ GET /


def test_page_is_html():
    result = make_client().simulate_get("/")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    assert "<html" in result.text and "/v1/ner" in result.text


def test_page_has_no_external_references():
    page = make_client().simulate_get("/").text
    assert not re.search(r"https?://", page)
    assert not re.search(r"\bsrc\s*=|<link\b", page)  # no scripts, styles or fonts to fetch
    # Links only to this service's own paths ("/openapi.json"), never to another host.
    assert all(re.fullmatch(r"/[^/].*", href) for href in re.findall(r'\bhref\s*=\s*"([^"]*)"', page))


def test_page_shows_worker_id_and_a_legend_for_each_type():
    page = make_client().simulate_get("/").text
    assert "X-Worker-Id" in page
    for entity_type in ("PER", "LOC", "ORG"):
        assert f"t-{entity_type}" in page


# ------------------------------------------------------------------ headers on every response


def test_every_response_carries_worker_and_request_ids():
    client = make_client(instance_id="ner-worker-abc")
    responses = [
        ner(client, {"text": "北京"}),
        ner(client, {"text": ""}),
        client.simulate_get("/no-such-path"),
        client.simulate_put("/v1/ner"),
        client.simulate_get("/health"),
        client.simulate_get("/metrics"),
        client.simulate_get("/"),
    ]
    for result in responses:
        assert result.headers["X-Worker-Id"] == "ner-worker-abc", result.status
        assert re.fullmatch(r"[0-9a-f]{32}", result.headers["X-Request-Id"]), result.status


def test_request_id_from_the_gateway_is_passed_through():
    result = ner(make_client(), {"text": "北京"}, headers={"X-Request-Id": "0123abcd-req"})
    assert result.headers["X-Request-Id"] == "0123abcd-req"


def test_request_id_is_passed_through_on_errors_too():
    result = make_client().simulate_get("/missing", headers={"X-Request-Id": "abc123"})
    assert result.status_code == 404
    assert result.headers["X-Request-Id"] == "abc123"


def test_request_id_that_could_forge_log_lines_is_replaced():
    result = ner(make_client(), {"text": "北京"}, headers={"X-Request-Id": 'evil" injected=1'})
    assert re.fullmatch(r"[0-9a-f]{32}", result.headers["X-Request-Id"])


def test_generated_request_ids_differ_per_request():
    client = make_client()
    ids = {client.simulate_get("/health").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5
