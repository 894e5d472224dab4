"""Every way a request can be refused: the right status, a JSON body, and the worker keeps serving."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from contextlib import contextmanager

import pytest
from falcon import testing

from tests.support.waiting import wait_for
from tests.unit.fake_backend import FakeBackend, make_client, make_config
from worker.app import create_app

# make_config(): max_text_chars=50, max_batch_texts=3, max_body_bytes=1000


def post_raw(client, body: bytes, content_type: str | None = "application/json", path="/v1/ner", **headers):
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.simulate_post(path, body=body, headers=headers)


def assert_error(result, status: int, *description_words: str) -> None:
    assert result.status_code == status, result.text
    assert result.headers["Content-Type"].startswith("application/json")
    assert set(result.json) == {"title", "description"}
    assert isinstance(result.json["title"], str) and result.json["title"]
    for word in description_words:
        assert word in result.json["description"], result.json


# ------------------------------------------------------------------ content type


def test_missing_content_type_is_415():
    assert_error(post_raw(make_client(), b'{"text": "x"}', content_type=None), 415)


def test_form_content_type_is_415():
    result = post_raw(make_client(), b"text=x", content_type="application/x-www-form-urlencoded")
    assert_error(result, 415, "application/json")


def test_json_in_a_charset_other_than_utf8_is_415():
    result = post_raw(make_client(), b'{"text": "x"}', content_type="application/json; charset=latin-1")
    assert_error(result, 415, "UTF-8")


# ------------------------------------------------------------------ body size


class ExplodingStream(io.RawIOBase):
    """A body that must never be read."""

    def read(self, size=-1):
        raise AssertionError("the body was read")


def call_with_environ(app, environ):
    start_response = testing.StartResponseMock()
    body = b"".join(app(environ, start_response))
    headers = {name.lower(): value for name, value in start_response.headers}
    return int(start_response.status.split()[0]), headers, json.loads(body)


def test_body_over_limit_is_413_before_reading():
    app = create_app(FakeBackend(), make_config())
    environ = testing.create_environ(method="POST", path="/v1/ner", headers={"Content-Type": "application/json"})
    environ["CONTENT_LENGTH"] = str(10**9)
    environ["wsgi.input"] = ExplodingStream()
    status, headers, body = call_with_environ(app, environ)
    assert status == 413
    assert "1000" in body["description"]
    assert headers["x-worker-id"] == "worker-test-1"


def chunked_environ(body: bytes):
    environ = testing.create_environ(method="POST", path="/v1/ner", headers={"Content-Type": "application/json"})
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def test_chunked_body_within_limit_is_accepted():
    app = create_app(FakeBackend(), make_config())
    status, _, body = call_with_environ(app, chunked_environ(json.dumps({"text": "北京"}).encode()))
    assert status == 200
    assert body["entities"][0]["span"] == "北京"


def test_chunked_body_over_limit_is_413_after_reading_at_most_limit_plus_one():
    app = create_app(FakeBackend(), make_config())
    stream = io.BytesIO(b'{"text": "' + b"a" * 5000 + b'"}')
    environ = chunked_environ(b"")
    environ["wsgi.input"] = stream
    status, _, _ = call_with_environ(app, environ)
    assert status == 413
    assert stream.tell() <= 1001


def test_empty_body_is_400():
    assert_error(post_raw(make_client(), b""), 400, "empty")


# ------------------------------------------------------------------ decoding and JSON


def test_body_that_is_not_utf8_is_400():
    assert_error(post_raw(make_client(), '{"text": "北京"}'.encode("gbk")), 400, "UTF-8")


def test_malformed_json_is_400():
    assert_error(post_raw(make_client(), b'{"text": '), 400, "malformed JSON")


def test_deeply_nested_json_is_400():
    body = b'{"text": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(post_raw(make_client(max_body_bytes=1_000_000), body), 400, "nested")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b"true"])
def test_top_level_that_is_not_an_object_is_400(body):
    assert_error(post_raw(make_client(), body), 400, "JSON object")


# ------------------------------------------------------------------ fields


def test_missing_text_and_texts_is_400():
    assert_error(make_client().simulate_post("/v1/ner", json={"txt": "北京"}), 400, "text")


def test_both_text_and_texts_is_400():
    result = make_client().simulate_post("/v1/ner", json={"text": "北京", "texts": ["北京"]})
    assert_error(result, 400, "exactly one")


@pytest.mark.parametrize(
    "value, name",
    [(None, "null"), (True, "boolean"), (3, "number"), (1.5, "number"), (["北京"], "array"), ({}, "object")],
)
def test_text_that_is_not_a_string_is_400(value, name):
    result = make_client().simulate_post("/v1/ner", json={"text": value})
    assert_error(result, 400, "text must be a string", name)


def test_empty_text_is_400():
    assert_error(make_client().simulate_post("/v1/ner", json={"text": ""}), 400, "text is empty")


@pytest.mark.parametrize("value", ["北京", None, 7, {"a": 1}])
def test_texts_that_is_not_a_list_is_400(value):
    result = make_client().simulate_post("/v1/ner", json={"texts": value})
    assert_error(result, 400, "texts must be a list")


def test_empty_texts_list_is_400():
    assert_error(make_client().simulate_post("/v1/ner", json={"texts": []}), 400, "texts is empty")


@pytest.mark.parametrize("item", [None, False, 1, ["北京"]])
def test_texts_item_that_is_not_a_string_is_400_naming_its_index(item):
    result = make_client().simulate_post("/v1/ner", json={"texts": ["北京", item]})
    assert_error(result, 400, "texts[1] must be a string")


def test_empty_item_in_texts_is_400_naming_its_index():
    result = make_client().simulate_post("/v1/ner", json={"texts": ["北京", ""]})
    assert_error(result, 400, "texts[1] is empty")


def test_lone_surrogate_in_text_is_400():
    result = post_raw(make_client(), b'{"text": "\\u5317\\ud800"}')
    assert_error(result, 400, "surrogate", "index 1")


def test_lone_surrogate_in_batch_is_400_naming_its_index():
    result = post_raw(make_client(), b'{"texts": ["ok", "\\udc00"]}')
    assert_error(result, 400, "texts[1]", "surrogate")


def test_escaped_surrogate_pair_is_a_valid_character():
    result = post_raw(make_client(), b'{"text": "\\ud83d\\ude00\\u5317\\u4eac"}')
    assert result.status_code == 200
    assert result.json["entities"][0]["start"] == 1


# ------------------------------------------------------------------ size limits on content


def test_text_at_the_character_limit_is_accepted():
    assert make_client().simulate_post("/v1/ner", json={"text": "字" * 50}).status_code == 200


def test_text_over_the_character_limit_is_413():
    result = make_client().simulate_post("/v1/ner", json={"text": "字" * 51})
    assert_error(result, 413, "51", "50")


def test_batch_item_over_the_character_limit_is_413():
    result = make_client().simulate_post("/v1/ner", json={"texts": ["北京", "字" * 51]})
    assert_error(result, 413, "texts[1]")


def test_batch_over_the_text_limit_is_413():
    result = make_client().simulate_post("/v1/ner", json={"texts": ["北京"] * 4})
    assert_error(result, 413, "4", "3")


def test_predict_text_over_the_character_limit_is_413():
    assert_error(make_client().simulate_post("/predict", json={"text": "字" * 51}), 413)


# ------------------------------------------------------------------ failures inside the worker


def test_model_failure_is_503_so_the_gateway_retries_elsewhere_and_is_logged(caplog):
    backend = FakeBackend()
    backend.fail_predict = True
    with caplog.at_level(logging.ERROR, logger="worker.errors"):
        result = make_client(backend).simulate_post("/v1/ner", json={"text": "北京"})
    assert_error(result, 503, "inference failed")
    assert "model exploded" in caplog.text


@pytest.mark.parametrize("failure", ["fail_predict", "crash_predict"], ids=["model failure", "unexpected exception"])
def test_worker_keeps_serving_after_a_failed_request(failure):
    backend = FakeBackend()
    client = make_client(backend)
    setattr(backend, failure, True)
    client.simulate_post("/v1/ner", json={"text": "北京"})
    setattr(backend, failure, False)
    assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 200


def test_unexpected_exception_is_500_json_without_traceback(caplog):
    backend = FakeBackend()
    backend.crash_predict = True
    with caplog.at_level(logging.ERROR, logger="worker.errors"):
        result = make_client(backend).simulate_post("/v1/ner", json={"text": "北京"})
    assert_error(result, 500)
    assert "Traceback" not in result.text and "secret internal detail" not in result.text
    assert "secret internal detail" in caplog.text  # operators still see it


def test_backend_returning_the_wrong_number_of_results_is_500():
    backend = FakeBackend()
    backend.predict_batch = lambda texts: []  # type: ignore[method-assign]
    assert_error(make_client(backend).simulate_post("/v1/ner", json={"text": "北京"}), 500)


# ------------------------------------------------------------------ overload


@contextmanager
def busy_slot(**overrides):
    """A client whose only inference slot is held by a request waiting on a gate."""
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = make_client(backend, max_inflight=1, **overrides)
    first = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    first.start()
    try:
        assert backend.entered.wait(5)
        yield client, backend
    finally:
        backend.gate.set()
        first.join(5)


def post_in_thread(client, results: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(client.simulate_post("/v1/ner", json={"text": "北京"})))
    thread.start()
    return thread


def test_with_deadline_zero_inference_beyond_the_slots_is_429_at_once():
    with busy_slot(queue_deadline_ms=0) as (client, _):
        started = time.monotonic()
        result = client.simulate_post("/v1/ner", json={"text": "北京"})
        assert time.monotonic() - started < 0.5
    assert_error(result, 429, "busy")
    assert result.headers["Retry-After"] == "1"
    assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 200


def test_a_request_waits_for_a_busy_slot_and_is_answered_once_it_frees():
    with busy_slot(queue_deadline_ms=5000) as (client, backend):
        results: list = []
        waiting = post_in_thread(client, results)
        time.sleep(0.05)
        assert results == []  # still waiting, not refused
        backend.gate.set()
        waiting.join(5)
    assert results[0].status_code == 200
    assert results[0].json["entities"][0]["span"] == "北京"


def test_a_request_that_cannot_start_within_the_deadline_is_429_with_retry_after():
    with busy_slot(queue_deadline_ms=50) as (client, _):
        result = client.simulate_post("/v1/ner", json={"text": "北京"})
    assert_error(result, 429, "within 50 ms")
    assert result.headers["Retry-After"] == "1"


def wait_until_queued(client, waiting: int) -> None:
    wait_for(
        lambda: f"ner_queue_length {waiting:.1f}" in client.simulate_get("/metrics").text,
        5,
        f"{waiting} requests queued",
        interval=0.005,
    )


def test_a_request_that_finds_the_queue_full_is_429_at_once():
    with busy_slot(queue_deadline_ms=5000, max_queue=1) as (client, _):
        results: list = []
        waiting = post_in_thread(client, results)
        wait_until_queued(client, 1)
        started = time.monotonic()
        result = client.simulate_post("/predict", json={"text": "北京"})
        assert time.monotonic() - started < 0.5
    waiting.join(5)
    assert_error(result, 429, "already waiting")
    assert result.headers["Retry-After"] == "1"
    assert results[0].status_code == 200


def test_refusals_are_counted_by_reason():
    with busy_slot(queue_deadline_ms=300, max_queue=1) as (client, _):
        results: list = []
        waiting = post_in_thread(client, results)
        wait_until_queued(client, 1)
        assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 429  # queue full
        waiting.join(5)  # refused once its 300 ms are over
    assert results[0].status_code == 429
    metrics = client.simulate_get("/metrics").text
    assert 'ner_overloaded_total{reason="deadline"} 1.0' in metrics
    assert 'ner_overloaded_total{reason="queue_full"} 1.0' in metrics


# ------------------------------------------------------------------ falcon's own errors


def test_error_is_json_even_when_the_client_accepts_only_html():
    result = make_client().simulate_post("/v1/ner", json={"text": ""}, headers={"Accept": "text/html"})
    assert_error(result, 400)


def test_unknown_path_is_404_json():
    assert_error(make_client().simulate_get("/nope", headers={"Accept": "text/html"}), 404)


def test_wrong_method_is_405_json():
    result = make_client().simulate_get("/v1/ner", headers={"Accept": "application/xml"})
    assert_error(result, 405)
    assert "POST" in result.headers["Allow"]


def test_invalid_content_length_header_is_400_json():
    app = create_app(FakeBackend(), make_config())
    environ = testing.create_environ(
        method="POST", path="/v1/ner", body=b"{}", headers={"Content-Type": "application/json"}
    )
    environ["CONTENT_LENGTH"] = "abc"
    status, headers, body = call_with_environ(app, environ)
    assert status == 400
    assert set(body) == {"title", "description"}
