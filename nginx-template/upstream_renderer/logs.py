"""The renderer's log: one JSON object per line on stderr, like every other process of the cluster."""
from __future__ import annotations

import json
import logging
import sys

# Every module logs here; the name is what each line's "logger" field says, which log readers know.
log = logging.getLogger("render_upstream")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so the gateway's logs parse like the workers'."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                   "logger": record.name, "msg": record.getMessage()}
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(level: str) -> None:
    """JSON lines on stderr at this level; urllib3's line per long poll is noise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
