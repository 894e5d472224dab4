"""The API contract and its errors, as a client sees them through the nginx gateway."""

from __future__ import annotations

import pytest
import requests

LONG_TEXT = "新华社北京电，国务院总理李强在人民大会堂会见了联合国秘书长古特雷斯。" * 30  # ~1,000 chars


@pytest.fixture(scope="module")
def gateway(cluster) -> str:
    cluster.up(2)
    cluster.wait_gateway_serving()
    return cluster.config.gateway_url


def post(
    gateway: str, path: str, body: bytes | str | None = None, content_type: str = "application/json", **kwargs
) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(gateway + path, data=body, headers=headers, timeout=15, **kwargs)


def assert_json_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"title", "description"}
    assert "Traceback" not in response.text


def assert_valid_entities(text: str, entities: list[dict]) -> None:
    for entity in entities:
        assert set(entity) == {"type", "start", "end", "span"}
        assert entity["type"] in {"PER", "LOC", "ORG"}
        assert 0 <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"] : entity["end"]] == entity["span"]


def test_single_text_gets_entities_and_the_model_name(gateway):
    text = "张三在北京的清华大学工作。"
    response = requests.post(gateway + "/v1/ner", json={"text": text}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"entities", "model"}
    assert body["model"].startswith("lac-msra-lstm@")
    assert_valid_entities(text, body["entities"])


def test_batch_results_come_back_in_input_order(gateway):
    texts = ["张三在北京工作。", "李四去了上海。", "ＡＢＣ公司😀在𠀀市", "   "]
    response = requests.post(gateway + "/v1/ner", json={"texts": texts}, timeout=10)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(texts)
    for text, result in zip(texts, results):
        assert_valid_entities(text, result["entities"])


def test_a_1000_character_text_is_not_truncated_and_all_offsets_are_valid(gateway):
    response = requests.post(gateway + "/v1/ner", json={"text": LONG_TEXT}, timeout=30)
    assert response.status_code == 200
    entities = response.json()["entities"]
    assert_valid_entities(LONG_TEXT, entities)
    assert max((e["end"] for e in entities), default=0) > 900  # the tail was predicted too


def test_original_predict_endpoint_keeps_its_shape(gateway):
    response = requests.post(gateway + "/predict", json={"text": "李四去了上海。"}, timeout=10)
    assert response.status_code == 200
    assert set(response.json()) == {"output"}
    assert_valid_entities("李四去了上海。", response.json()["output"])


def test_every_response_names_the_worker_and_the_request(gateway):
    response = requests.post(
        gateway + "/v1/ner", json={"text": "张三"}, timeout=10, headers={"X-Request-Id": "trace-me-123"}
    )
    assert response.headers["X-Worker-Id"].startswith("ner-worker-")
    assert response.headers["X-Request-Id"] == "trace-me-123"


def test_the_gateway_generates_a_request_id_when_the_client_sends_none(gateway):
    response = requests.post(gateway + "/v1/ner", json={"text": "张三"}, timeout=10)
    assert len(response.headers["X-Request-Id"]) >= 16


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"text"',
        b"{}",
        b'{"text": 5}',
        b'{"text": null}',
        b'{"texts": "abc"}',
        b'{"texts": [1, 2]}',
        b'{"texts": []}',
        b'{"text": ""}',
        b'{"text": "a", "texts": ["b"]}',
        b'\xff\xfe{"text": "x"}',
        b'{"text": "\\ud800"}',
    ],
)
def test_malformed_requests_are_400_json(gateway, body):
    assert_json_error(post(gateway, "/v1/ner", body), 400)


def test_deeply_nested_json_is_400_and_the_worker_keeps_serving(gateway):
    assert_json_error(post(gateway, "/v1/ner", "[" * 100_000 + "]" * 100_000), 400)
    assert requests.post(gateway + "/v1/ner", json={"text": "张三"}, timeout=10).status_code == 200


def test_wrong_content_type_is_415(gateway):
    assert_json_error(post(gateway, "/v1/ner", b"text=abc", content_type="application/x-www-form-urlencoded"), 415)


def test_text_over_the_character_limit_is_413(gateway):
    assert_json_error(requests.post(gateway + "/v1/ner", json={"text": "字" * 20_001}, timeout=10), 413)


def test_batch_over_the_text_limit_is_413(gateway):
    assert_json_error(requests.post(gateway + "/v1/ner", json={"texts": ["字"] * 65}, timeout=10), 413)


def test_body_over_the_gateway_limit_is_413_from_nginx(gateway):
    assert_json_error(post(gateway, "/v1/ner", b'{"text": "' + b"a" * (3 * 1024 * 1024) + b'"}'), 413)


def test_unknown_path_is_a_json_404(gateway):
    assert_json_error(requests.get(gateway + "/no/such/thing", timeout=10), 404)


def test_health_through_the_gateway_is_static(gateway):
    first = requests.get(gateway + "/health", timeout=10)
    second = requests.get(gateway + "/health", timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
