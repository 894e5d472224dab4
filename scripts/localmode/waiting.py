"""Waiting for the local cluster's processes and services, which become ready on their own time."""

from __future__ import annotations

from typing import Callable

import requests

from registrar.retrying import poll

# What a service still starting answers with: no listener yet, a half-written file, a non-JSON page.
STARTING_ERRORS = (requests.RequestException, OSError, ValueError)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll predicate until true; return seconds taken or raise TimeoutError naming what."""
    took = poll(predicate, timeout, interval, ignore=STARTING_ERRORS)
    if took is None:
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
    return took
