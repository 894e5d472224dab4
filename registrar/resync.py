"""A daemon thread that keeps the instance registered while the Consul agent comes and goes."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from registrar.logs import log_event


class Resync:
    """Calls `ensure` every `interval` seconds; survives any exception; stoppable and joinable."""

    def __init__(self, ensure: Callable[[], object], interval: float, name: str = "registrar-resync") -> None:
        self._ensure = ensure
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.runs = 0
        self.failures = 0

    def start(self) -> "Resync":
        self._thread.start()
        return self

    def run_once(self) -> None:
        """One pass; an exception is logged, never propagated, so the loop always continues."""
        self.runs += 1
        try:
            self._ensure()
        except Exception:  # noqa: BLE001 - this thread must outlive any Consul or client bug
            self.failures += 1
            log_event(logging.ERROR, "registrar.resync_failed", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait (bounded) for a pass in progress to finish."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
