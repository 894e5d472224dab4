"""Structured logs: JSON lines off a terminal, text on one, and one line per request."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import textwrap

import pytest

from registrar.logformat import JsonFormatter, TextFormatter
from registrar.logs import log_event
from tests.unit.fake_backend import FakeBackend, make_client
from worker.logs import adopt_library_logger, configure_logging


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
    assert list(entry) == ["time", "level", "logger", "event", "request_id", "texts"]
    assert (entry["level"], entry["logger"], entry["event"]) == ("INFO", "worker.test", "hello")
    assert (entry["request_id"], entry["texts"]) == ("r1", 2)


def test_log_time_is_utc_iso_8601_with_milliseconds_and_z():
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "hi", (), None)
    record.created, record.msecs = 1_796_110_526.205, 205.0
    assert json.loads(JsonFormatter().format(record))["time"] == "2026-12-01T07:35:26.205Z"


def test_registrar_events_have_the_same_shape_with_their_fields(restore_root_logger):
    stream = io.StringIO()
    configure_logging(stream=stream)
    log_event(logging.INFO, "registrar.registered", service_id="ner-worker-h-1", port=8101)
    entry = json.loads(stream.getvalue())
    assert list(entry)[:4] == ["time", "level", "logger", "event"]
    assert (entry["level"], entry["logger"], entry["event"]) == ("INFO", "registrar", "registrar.registered")
    assert (entry["service_id"], entry["port"]) == ("ner-worker-h-1", 8101)
    assert "fields" not in entry


def test_a_field_never_hides_the_lines_own_keys():
    record = logging.getLogger("x").makeRecord(
        "x", logging.WARNING, __file__, 1, "hi", (), None, extra={"fields": {"level": "fake", "event": "forged"}}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["event"]) == ("WARNING", "hi")


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
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_a_library_logger_with_its_own_stderr_handler_writes_the_same_json(restore_root_logger):
    library = logging.getLogger("ner-test-library")
    own = io.StringIO()
    library.handlers[:] = [logging.StreamHandler(own)]
    library.propagate = False
    stream = io.StringIO()
    configure_logging(stream=stream)
    adopt_library_logger("ner-test-library")
    library.info("initiate model from %s", "/models/x")
    assert own.getvalue() == ""
    assert json.loads(stream.getvalue())["event"] == "initiate model from /models/x"
    library.handlers[:] = []


_MODELSCOPE = textwrap.dedent("""
    import logging
    from worker.logs import adopt_library_logger, configure_logging
    configure_logging()
    import modelscope
    adopt_library_logger("modelscope")
    from modelscope.utils.logger import get_logger
    get_logger().info("initiate model from /models/x")  # as its modules do, after the import
""")


def test_modelscope_lines_come_out_in_the_same_shape_once_adopted_after_its_import():
    done = subprocess.run([sys.executable, "-c", _MODELSCOPE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "initiate model" in line]
    assert len(lines) == 1, done.stderr
    entry = json.loads(lines[0])
    assert (entry["logger"], entry["level"], entry["event"]) == ("modelscope", "INFO", "initiate model from /models/x")
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - modelscope - ", done.stderr)


def test_text_formatter_puts_fields_before_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info(), extra={"request_id": "r9"}
        )
    first_line = TextFormatter().format(record).splitlines()[0]
    assert first_line.endswith("failed request_id=r9")


def request_records(caplog):
    return [r for r in caplog.records if r.name == "worker.request"]


def test_one_log_line_per_request_with_its_fields(caplog):
    client = make_client(instance_id="ner-worker-9")
    with caplog.at_level(logging.DEBUG, logger="worker.request"):
        client.simulate_post("/v1/ner", json={"texts": ["北京", "张三在"]}, headers={"X-Request-Id": "req-42"})
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
