"""SIGTERM/SIGINT: stop at once while only waiting, otherwise after the current write and reload."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Any, Iterator

from upstream_renderer.logs import log


class Shutdown(Exception):
    """SIGTERM/SIGINT arrived while waiting: leave the loop."""


class Signals:
    """Whether a stop was asked for, and whether the loop may be interrupted right now."""

    def __init__(self) -> None:
        self.stopping = False
        self.interruptible = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Stop now if we are only waiting; otherwise finish the current write/reload first."""
        log.info("signal received, stopping", extra={"fields": {"signal": signum}})
        self.stopping = True
        if self.interruptible:
            raise Shutdown()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """A wait a signal may cut short with Shutdown; none starts once a stop was asked for."""
        self.interruptible = True
        try:
            if self.stopping:
                raise Shutdown()
            yield
        finally:
            self.interruptible = False

    def sleep(self, seconds: float) -> None:
        """A back-off a signal may cut short; skipped once a stop was asked for."""
        self.interruptible = True
        try:
            if not self.stopping:
                time.sleep(seconds)
        finally:
            self.interruptible = False
