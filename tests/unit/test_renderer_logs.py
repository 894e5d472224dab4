"""The renderer writes the cluster's one log shape, with the standard library only."""

from __future__ import annotations

import json
import logging

from registrar.logformat import JsonFormatter as ClusterFormatter
from upstream_renderer.logs import JsonFormatter


def record_with_fields() -> logging.LogRecord:
    record = logging.LogRecord("render_upstream", logging.INFO, __file__, 1, "upstream changed", None, None)
    record.created, record.msecs = 1_796_110_526.205, 205.0
    record.fields = {"old_count": 1, "new_count": 2, "event": "not this"}
    return record


def test_a_renderer_line_has_the_same_keys_in_the_same_order_as_every_other_component():
    line = json.loads(JsonFormatter().format(record_with_fields()))
    assert list(line) == ["time", "level", "logger", "event", "old_count", "new_count"]
    assert line == json.loads(ClusterFormatter().format(record_with_fields()))


def test_a_field_never_replaces_the_event():
    assert json.loads(JsonFormatter().format(record_with_fields()))["event"] == "upstream changed"


def test_time_is_utc_with_milliseconds():
    assert json.loads(JsonFormatter().format(record_with_fields()))["time"].endswith(".205Z")
