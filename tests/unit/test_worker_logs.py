"""Structured logs: JSON lines off a terminal, text on one, and one line per request."""
from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from tests.unit.fake_backend import FakeBackend, make_client
from worker.logs import JsonFormatter, TextFormatter, configure_logging


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_logs_are_json_lines_when_stderr_is_not_a_terminal(restore_root_logger):
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("worker.test").info("hello", extra={"request_id": "r1", "texts": 2})
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "hello" and entry["level"] == "INFO"
    assert entry["request_id"] == "r1" and entry["texts"] == 2
    assert entry["logger"] == "worker.test" and "ts" in entry


def test_logs_are_readable_text_at_a_terminal(restore_root_logger):
    stream = FakeTty()
    configure_logging(stream=stream)
    logging.getLogger("worker.test").info("hello", extra={"request_id": "r1"})
    line = stream.getvalue()
    assert "hello" in line and "request_id=r1" in line
    assert not line.lstrip().startswith("{")


def test_json_log_line_keeps_the_traceback_in_one_field():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (),
                                                   exc_info=sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_formatter_puts_fields_before_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (),
                                                   exc_info=sys.exc_info(),
                                                   extra={"request_id": "r9"})
    first_line = TextFormatter().format(record).splitlines()[0]
    assert first_line.endswith("failed request_id=r9")


def request_records(caplog):
    return [r for r in caplog.records if r.name == "worker.request"]


def test_one_log_line_per_request_with_its_fields(caplog):
    client = make_client(instance_id="ner-worker-9")
    with caplog.at_level(logging.DEBUG, logger="worker.request"):
        client.simulate_post("/v1/ner", json={"texts": ["北京", "张三在"]},
                             headers={"X-Request-Id": "req-42"})
    [record] = request_records(caplog)
    assert record.request_id == "req-42"
    assert record.worker_id == "ner-worker-9"
    assert (record.method, record.path, record.status) == ("POST", "/v1/ner", 200)
    assert (record.texts, record.chars) == (2, 5)
    assert record.duration_ms >= 0


def test_failed_requests_are_logged_too(caplog):
    with caplog.at_level(logging.INFO, logger="worker.request"):
        make_client().simulate_get("/missing")
    [record] = request_records(caplog)
    assert record.status == 404


def test_successful_health_checks_log_at_debug_only(caplog):
    with caplog.at_level(logging.INFO, logger="worker.request"):
        make_client().simulate_get("/health")
    assert request_records(caplog) == []


def test_failing_health_checks_log_at_info(caplog):
    backend = FakeBackend()
    backend.fail_probe = True
    with caplog.at_level(logging.INFO, logger="worker.request"):
        make_client(backend).simulate_get("/health")
    [record] = request_records(caplog)
    assert record.status == 503
