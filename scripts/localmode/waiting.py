"""Polling with a deadline, for processes and services that become ready on their own time."""

from __future__ import annotations

import time
from typing import Callable

import requests


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll predicate until true; return seconds taken or raise TimeoutError naming what."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except (requests.RequestException, OSError, ValueError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
