"""The one log line shape of every Python process of the cluster: workers, registrar, gunicorn itself.

Off a terminal, one JSON object per line, keys in this order:
  time    UTC, ISO 8601 with milliseconds and Z ("2026-12-01T07:35:26.205Z")
  level   upper case ("INFO")
  logger  the logger's name ("worker.request", "registrar", "gunicorn.error", "modelscope")
  event   what happened: the registrar's event name, otherwise the message
  ...     the record's fields (`extra=`, or the registrar's `fields`), then `exception` (a traceback)
At a terminal, the same as text: `time LEVEL logger: event k=v ...`, a traceback below.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field,
# except what registrar records carry (registrar/logs.py): "event" and its "fields" as one dict.
_NOT_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "event", "fields"}


def utc_time(record: logging.LogRecord) -> str:
    """The record's time as 2026-12-01T07:35:26.205Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def event_of(record: logging.LogRecord) -> str:
    return getattr(record, "event", None) or record.getMessage()


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields: its `extra=` attributes, and the registrar's `fields` dict."""
    fields = {k: v for k, v in vars(record).items() if k not in _NOT_FIELDS}
    fields.update(getattr(record, "fields", None) or {})
    return fields


class JsonFormatter(logging.Formatter):
    """One self-contained JSON object per line, so log shippers need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "event": event_of(record),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)  # a field never hides one of the four above
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable at a terminal: the event, then the fields as key=value, a traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in fields_of(record).items())
        line = f"{utc_time(record)} {record.levelname:<7} {record.name}: {event_of(record)}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def formatter_for(stream: TextIO) -> logging.Formatter:
    """Text for a person at a terminal, JSON lines for everything else."""
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return TextFormatter() if is_tty else JsonFormatter()


def stderr_formatter() -> logging.Formatter:
    """The formatter for stderr (a factory for logging.config, e.g. gunicorn's logconfig_dict)."""
    return formatter_for(sys.stderr)
