"""The renderer's log: one JSON object per line on stderr, like every other process of the cluster."""

from __future__ import annotations

import json
import logging
import sys
import time

# Every module logs here; the name is what each line's "logger" field says, which log readers know.
log = logging.getLogger("render_upstream")


class JsonFormatter(logging.Formatter):
    """The cluster's one log shape (registrar/logformat.py), in the standard library only.

    time (UTC, ISO 8601 with milliseconds), level, logger, event, then the fields, which never
    replace those four.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        payload = {"time": stamp, "level": record.levelname, "logger": record.name, "event": record.getMessage()}
        for key, value in getattr(record, "fields", {}).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(level: str) -> None:
    """JSON lines on stderr at this level; urllib3's line per long poll is noise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
