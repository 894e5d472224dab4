"""Hostile requests get their documented status and a JSON error, and the worker keeps serving.

Each case goes to a real worker directly and through the nginx gateway.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
import requests

from scripts.localcluster import LocalCluster, child_pids
from tests.support.rawhttp import RawResponse, exchange, request_bytes
from tests.support.waiting import wait_for

NESTED = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
MIXED = "张三😀在北京ABC大学，Ελλάδα и Москва𠀀 🇨🇳 e\u0301"

# name -> (body, expected status)
CORPUS: dict[str, tuple[bytes, int]] = {
    "invalid_utf8": (b'{"text": "\xff\xfe\xc3\x28"}', 400),
    "lone_surrogate": (b'{"text": "abc\\ud800def"}', 400),
    "lone_surrogate_in_batch": (b'{"texts": ["ok", "\\udfff"]}', 400),
    "nul_and_control_chars": (json.dumps({"text": "北京\u0000\u0001\u0007\u001b张三\u007f"}).encode(), 200),
    "deeply_nested_json": (NESTED, 400),
    "text_is_a_number": (b'{"text": 5}', 400),
    "text_is_null": (b'{"text": null}', 400),
    "texts_is_a_string": (b'{"texts": "abc"}', 400),
    "texts_holds_an_object": (b'{"texts": [{"a": 1}]}', 400),
    "body_is_an_array": (b'["text"]', 400),
    "both_fields": (b'{"text": "a", "texts": ["b"]}', 400),
    "truncated_json": (b'{"text": "abc', 400),
    "huge_batch": (json.dumps({"texts": ["北京"] * 10_000}).encode(), 413),
    "text_over_the_char_limit": (json.dumps({"text": "京" * 20_001}).encode(), 413),
    "emoji_and_mixed_scripts": (json.dumps({"text": MIXED}, ensure_ascii=False).encode(), 200),
    "whitespace_only": (json.dumps({"text": " \t\n\u3000\u00a0"}).encode(), 200),
    "empty_text": (b'{"text": ""}', 400),
}


def worker_pids(cluster: LocalCluster) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Port -> (gunicorn master pid, its child pids): a crashed or recycled process changes them."""
    pids = {}
    for proc in cluster.workers().values():
        pids[proc.port] = (proc.pid, tuple(sorted(child_pids(proc.pid))))
    return pids


@pytest.fixture(scope="module")
def targets(cluster: LocalCluster) -> dict[str, int]:
    """The gateway and one worker, by name -> port."""
    cluster.up(2)
    cluster.wait_gateway_serving()
    worker = next(iter(cluster.workers().values()))
    return {"worker": worker.port, "gateway": cluster.config.gateway_port}


@pytest.fixture
def unchanged_workers(cluster: LocalCluster, targets):
    """After the test: every worker is healthy and runs in the same processes as before."""
    before = worker_pids(cluster)
    yield
    for port in before:
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    assert worker_pids(cluster) == before


def assert_json_error(response: RawResponse, status: int) -> None:
    assert response.status == status, response.body[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"title", "description"}
    assert b"Traceback" not in response.body


def assert_valid_answer(text_body: bytes, response: RawResponse) -> None:
    assert response.status == 200, response.body[:300]
    text = json.loads(text_body)["text"]
    for entity in response.json()["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["span"]


@pytest.mark.parametrize("target", ["worker", "gateway"])
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_body_gets_its_documented_status(targets, unchanged_workers, target, case):
    body, status = CORPUS[case]
    response = exchange(targets[target], [request_bytes("/v1/ner", body)])
    if status == 200:
        assert_valid_answer(body, response)
    else:
        assert_json_error(response, status)


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_ten_megabyte_body_is_413_before_it_is_read(targets, unchanged_workers, target):
    size = 10 * 1024 * 1024
    head = request_bytes("/v1/ner", b"", content_length=size)
    response = exchange(targets[target], [head, b'{"text": "' + b"a" * 65_536])
    assert_json_error(response, 413)


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_chunked_body_over_the_limit_is_413(targets, unchanged_workers, target):
    chunk = b"a" * 1_000_000
    pieces = (
        [request_bytes("/v1/ner", b"", {"Transfer-Encoding": "chunked"}, content_length=-1), b'a\r\n{"text": "\r\n']
        + [b"f4240\r\n" + chunk + b"\r\n"] * 3
        + [b"0\r\n\r\n"]
    )
    assert_json_error(exchange(targets[target], pieces), 413)


SHORT_CHUNK = b'100\r\n{"text": "ab"}\r\n0\r\n\r\n'  # announces 256 bytes, sends 21, gives up
LONG_LENGTH_BODY = b'{"text": "ab"}'  # sent with a Content-Length 50 bytes longer, then gives up


def lying_requests() -> dict[str, list[bytes]]:
    chunked = request_bytes("/v1/ner", b"", {"Transfer-Encoding": "chunked"}, content_length=-1)
    return {
        "short_chunk": [chunked, SHORT_CHUNK],
        "long_content_length": [request_bytes("/v1/ner", LONG_LENGTH_BODY, content_length=len(LONG_LENGTH_BODY) + 50)],
    }


@pytest.mark.parametrize("case", ["short_chunk", "long_content_length"])
def test_worker_answers_400_to_a_body_shorter_than_announced(targets, unchanged_workers, case):
    response = exchange(targets["worker"], lying_requests()[case], timeout=15, half_close=True)
    assert_json_error(response, 400)


@pytest.mark.parametrize("case", ["short_chunk", "long_content_length"])
def test_gateway_drops_a_body_shorter_than_announced_without_bothering_a_worker(
    cluster, targets, unchanged_workers, case
):
    access_log = cluster.nginx_dir() / "access.log"
    before = access_log.stat().st_size
    with pytest.raises(http.client.RemoteDisconnected):
        exchange(targets["gateway"], lying_requests()[case], timeout=15, half_close=True)
    with open(access_log, "rb") as log:
        log.seek(before)
        entries = [json.loads(line) for line in log.read().splitlines() if line.strip()]
    assert entries and all(entry["upstream_addr"] == "" for entry in entries)


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_a_slow_client_is_served_and_does_not_hold_up_others(targets, unchanged_workers, target):
    body = json.dumps({"text": "张三在北京工作。"}, ensure_ascii=False).encode()
    raw = request_bytes("/v1/ner", body)
    pieces = [raw[i : i + 16] for i in range(0, len(raw), 16)]
    result: dict[str, RawResponse] = {}
    sent_at: list[float] = []
    slow = threading.Thread(
        target=lambda: result.update(r=exchange(targets[target], pieces, pause=0.15, sent_at=sent_at))
    )
    slow.start()
    answered_at: list[float] = []
    try:
        wait_for(lambda: len(sent_at) >= 2, 5, "the slow client's first pieces on the wire")
        for _ in range(5):
            fast = requests.post(f"http://127.0.0.1:{targets[target]}/v1/ner", json={"text": "北京"}, timeout=5)
            assert fast.status_code == 200
            answered_at.append(time.monotonic())
    finally:
        slow.join(timeout=20)
    assert result["r"].status == 200
    assert len(sent_at) == len(pieces)
    # Its last piece left after every other request was answered: they did not wait for it.
    assert max(answered_at) < sent_at[-1], (
        f"the last fast answer came {max(answered_at) - sent_at[-1]:+.2f}s after the slow request was complete"
    )
