"""Product code's one way to wait: retry a call that fails for a while (stamina), or poll a condition.

A retry repeats a call that raised; a poll asks a question until the answer is yes. Polls keep
a fixed short interval and an injectable clock and sleep (the registrar's drain runs on fake
time in its tests), which stamina has no place for, so they are a loop of their own here.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from registrar.logs import log_event

T = TypeVar("T")
Errors = type[Exception] | tuple[type[Exception], ...]


def _log_retry(details: RetryDetails) -> None:
    """stamina's default hooks warn on every retry and add a Prometheus counter; a retry is routine here."""
    log_event(
        logging.DEBUG,
        "retry_scheduled",
        call=details.name,
        retry=details.retry_num,
        wait=round(details.wait_for, 3),
        caused_by=repr(details.caused_by)[:200],
    )


set_on_retry_hooks([_log_retry])


def retry_call(call: Callable[[], T], on: Errors, timeout: float, interval: float) -> T:
    """call() again every interval s while it raises `on`, for up to timeout s; then its last error goes through."""
    if timeout <= 0:
        return call()
    caller = stamina.RetryingCaller(
        attempts=None, timeout=timeout, wait_initial=interval, wait_max=interval, wait_jitter=0.0, wait_exp_base=1.0
    )
    return caller(on, call)


def poll(
    condition: Callable[[], object],
    timeout: float,
    interval: float,
    *,
    ignore: Errors = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float | None:
    """Seconds until condition() held, or None once timeout passed without; an `ignore` error counts as not yet."""
    start = clock()
    while True:
        try:
            if condition():
                return clock() - start
        except ignore:
            pass
        if clock() - start >= timeout:
            return None
        sleep(interval)
