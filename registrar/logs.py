"""Structured log lines for the registrar: an event name plus fields, as text and as record extras."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "registrar"
logger = logging.getLogger(LOGGER_NAME)


def log_event(level: int, event: str, exc_info: bool = False, **fields: Any) -> None:
    """Log `event k=v ...`; the fields also ride on the record so a JSON formatter can emit them."""
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.log(level, "%s %s", event, text, exc_info=exc_info,
               extra={"event": event, "fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so log shippers need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def ensure_logging(level: int = logging.INFO) -> None:
    """Give the registrar a handler when the host process configured none, so INFO is not lost."""
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
