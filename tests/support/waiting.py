"""The tests' one way to wait: poll until a condition holds, or fail with a TimeoutError naming it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sized


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.05,
    *,
    on_timeout: Callable[[], str] | None = None,
) -> float:
    """Poll predicate until it is true; return the seconds it took, or raise TimeoutError naming what.

    A probe that raises counts as "not yet" (a port not open, a file half written), except an
    AssertionError, which is a failure at once; the timeout says what the last probe raised and
    adds on_timeout's context (e.g. a log tail).
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        last_error: Exception | None = None
        try:
            if predicate():
                return time.monotonic() - start
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 - reported in the timeout below
            last_error = error
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"timed out after {timeout:g}s waiting for {what}"
    if last_error is not None:
        message += f" (the last probe raised {type(last_error).__name__}: {last_error})"
    if on_timeout is not None:
        message += "\n" + on_timeout()
    raise TimeoutError(message)


def wait_outcomes(outcomes: Sized | Callable[[], Sized], more: int, timeout: float = 30.0) -> float:
    """Wait until a request loop has `more` outcomes beyond those it has now, so that the time
    before or after an event has traffic in it; outcomes is the loop's growing list, or a
    callable returning it."""

    def count() -> int:
        return len(outcomes() if callable(outcomes) else outcomes)

    target = count() + more
    return wait_for(lambda: count() >= target, timeout, f"{more} more request outcomes (to {target})")
