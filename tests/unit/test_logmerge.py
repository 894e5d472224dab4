"""`make logs`: every program's log shape parsed, all of them merged in time order, one request picked out."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scripts.localmode.logmerge import Follower, merged, parse_line, records, select, sources

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc_local_time(monkeypatch):
    """Times written without a zone are local: pin the zone so the expectations hold anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.mark.parametrize(
    "line, moment, level, event",
    [
        (
            '{"time": "2026-12-01T08:23:51.913Z", "level": "INFO", "logger": "gunicorn.error", "event": "Starting"}',
            "2026-12-01T08:23:51.913",
            "INFO",
            "gunicorn.error: Starting",
        ),
        (
            '{"ts": "2026-11-26T23:24:18.918+00:00", "level": "INFO", "logger": "worker.request", "message": "request"}',
            "2026-11-26T23:24:18.918",
            "INFO",
            "worker.request: request",
        ),
        (
            '{"time":"2026-11-26T23:24:18+00:00","request_id":"r1","method":"POST","uri":"/v1/ner","status":503}',
            "2026-11-26T23:24:18",
            "ERROR",
            "POST /v1/ner 503",
        ),
        (
            '{"caller":"main.go:551","level":"info","msg":"Starting Prometheus Server","ts":"2026-12-01T08:23:51.290Z"}',
            "2026-12-01T08:23:51.290",
            "INFO",
            "Starting Prometheus Server",
        ),
        (
            "    2026-12-01T08:23:50.154Z [WARN]  agent: check has interval below minimum",
            "2026-12-01T08:23:50.154",
            "WARN",
            "agent: check has interval below minimum",
        ),
        (
            "2026-12-01 08:23:49,997 INFO spawned: 'consul' with pid 7759",
            "2026-12-01T08:23:49.997",
            "INFO",
            "spawned: 'consul' with pid 7759",
        ),
        (
            "2026/12/01 08:24:07 [error] 7794#7794: *1 connect() failed",
            "2026-12-01T08:24:07",
            "ERROR",
            "7794#7794: *1 connect() failed",
        ),
        (
            "I1201 08:23:50.957965    7797 main.go:116] mtail version 3.0.0~rc50",
            "2026-12-01T08:23:50.957965",
            "INFO",
            "main.go:116] mtail version 3.0.0~rc50",
        ),
    ],
    ids=[
        "cluster shape",
        "older worker shape",
        "nginx access",
        "prometheus",
        "consul",
        "supervisord",
        "nginx error",
        "mtail glog",
    ],
)
def test_each_programs_line_shape_gives_its_time_level_and_event(line, moment, level, event):
    record = parse_line(line, "x", now=at("2026-12-02T00:00:00"))
    assert (record.time, record.level, record.event) == (at(moment), level, event)


def test_a_time_without_a_zone_is_read_as_local_time(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    record = parse_line('{"time": "2026-12-01T16:00:00", "level": "INFO", "event": "x"}', "renderer")
    assert record.time == at("2026-12-01T08:00:00")


def test_glog_lines_from_december_read_in_january_belong_to_last_year():
    record = parse_line("I1231 23:59:59.000000 1 main.go:1] late", "mtail", now=at("2027-01-01T00:00:05"))
    assert record.time == at("2026-12-31T23:59:59")


def test_lines_without_a_time_stay_with_the_line_before_them():
    lines = [
        '{"time": "2026-12-01T08:00:00Z", "level": "ERROR", "event": "boom"}',
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: bad",
    ]
    (record,) = records(lines, "worker-1")
    assert record.event == "boom" and record.more == lines[1:]


def test_logs_of_several_programs_come_out_in_time_order():
    streams = {
        "gateway": ['{"time":"2026-12-01T08:00:02+00:00","request_id":"r","uri":"/v1/ner","status":200}'],
        "worker-1": [
            '{"time": "2026-12-01T08:00:01.500Z", "level": "INFO", "event": "request"}',
            '{"time": "2026-12-01T08:00:03Z", "level": "INFO", "event": "later"}',
        ],
        "consul": ["2026-12-01T08:00:00.100Z [INFO]  agent: first"],
    }
    assert [record.source for record in merged(streams)] == ["consul", "worker-1", "gateway", "worker-1"]


def test_a_request_id_keeps_that_requests_lines_from_gateway_and_worker_only():
    streams = {
        "gateway": [
            '{"time":"2026-12-01T08:00:02+00:00","request_id":"want","uri":"/v1/ner","status":200}',
            '{"time":"2026-12-01T08:00:02+00:00","request_id":"other","uri":"/v1/ner","status":200}',
        ],
        "worker-2": [
            '{"time": "2026-12-01T08:00:01.9Z", "level": "INFO", "event": "request", "request_id": "want"}',
            '{"time": "2026-12-01T08:00:01.8Z", "level": "INFO", "event": "request", "request_id": "other"}',
        ],
    }
    picked = list(select(merged(streams), "want"))
    assert [(record.source, record.request_id()) for record in picked] == [("worker-2", "want"), ("gateway", "want")]


def test_the_sources_are_every_program_log_and_nginxs_access_and_error_logs(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx").mkdir()
    for path in ("logs/consul.log", "logs/worker-1.log", "logs/worker-1.log.1", "nginx/access.log", "nginx/error.log"):
        (tmp_path / path).write_text("")
    assert sorted(sources(tmp_path)) == ["consul", "gateway", "nginx-error", "worker-1"]


def test_following_returns_only_complete_lines_written_since_the_last_look(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "worker-1.log"
    log.write_text('{"event": "one"}\n')
    follower = Follower(tmp_path)
    assert follower.new_lines() == {"worker-1": ['{"event": "one"}']}
    with open(log, "a") as out:
        out.write('{"event": "two"}\n{"event": "thr')
    assert follower.new_lines() == {"worker-1": ['{"event": "two"}']}
    with open(log, "a") as out:
        out.write('ee"}\n')
    assert follower.new_lines() == {"worker-1": ['{"event": "three"}']}
    assert follower.new_lines() == {}


def test_following_starts_a_replaced_log_from_its_beginning(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "nginx.log"
    log.write_text("2026/12/01 08:00:00 [warn] old line\n")
    follower = Follower(tmp_path)
    follower.new_lines()
    rotated = tmp_path / "logs" / "nginx.log.new"
    rotated.write_text("2026/12/01 08:00:05 [warn] new\n")
    rotated.replace(log)
    assert follower.new_lines() == {"nginx": ["2026/12/01 08:00:05 [warn] new"]}


def test_json_output_keeps_the_fields_and_names_the_source():
    (record,) = records(
        [
            '{"time": "2026-12-01T08:00:00Z", "level": "INFO", "logger": "worker.request", '
            '"event": "request", "request_id": "r", "status": 200}'
        ],
        "worker-1",
    )
    out = json.loads(record.as_json())
    assert out == {
        "time": "2026-12-01T08:00:00.000Z",
        "source": "worker-1",
        "level": "INFO",
        "event": "worker.request: request",
        "request_id": "r",
        "status": 200,
    }


def test_compose_logs_are_sorted_by_the_lines_own_times_else_the_engines():
    from scripts.localmode.logmerge import compose_records

    lines = [
        'worker-1  | 2026-12-01T08:00:02.123456789Z {"time": "2026-12-01T08:00:01.900Z", "level": "INFO", '
        '"logger": "worker.request", "event": "request", "request_id": "r1"}',
        "consul-1  | 2026-12-01T08:00:00.500000000+00:00 ==> Starting Consul agent...",
        'gateway-1  | 2026-12-01T08:00:01.000000000Z {"time":"2026-12-01T08:00:01.000Z","level":"INFO",'
        '"logger":"gateway","event":"renderer: started"}',
        "not a compose line",
    ]
    picked = [(record.source, record.time) for record in compose_records(lines)]
    assert picked == [
        ("consul-1", at("2026-12-01T08:00:00.500")),
        ("gateway-1", at("2026-12-01T08:00:01")),
        ("worker-1", at("2026-12-01T08:00:01.900")),
    ]
