"""Structured log lines for the registrar: an event name plus fields, as text and as record extras."""

from __future__ import annotations

import logging
import sys
from typing import Any

from registrar.logformat import stderr_formatter

LOGGER_NAME = "registrar"
logger = logging.getLogger(LOGGER_NAME)


def log_event(level: int, event: str, exc_info: bool = False, **fields: Any) -> None:
    """Log `event k=v ...`; the fields also ride on the record so a JSON formatter can emit them."""
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.log(level, "%s %s", event, text, exc_info=exc_info, extra={"event": event, "fields": fields})


def ensure_logging(level: int = logging.INFO) -> None:
    """Give the registrar a handler when the host process configured none, so INFO is not lost."""
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(stderr_formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
