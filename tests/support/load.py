"""A bounded request loop through the gateway, run beside a failure to count what clients see."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass
class Outcome:
    """One request: when it was sent, what came back, who served it."""

    sent_at: float
    status: int | None
    worker: str | None
    error: str | None = None


@dataclass
class RequestLoop:
    """Sequential POSTs, one fresh connection each, bounded in count and time; stops by itself.

    `interval` paces the loop (seconds between starts), e.g. to stay under a gateway rate limit.
    """

    url: str
    payload: dict
    max_requests: int = 2000
    max_seconds: float = 30.0
    timeout: float = 10.0
    interval: float = 0.0
    verify: bool | str = True  # requests' verify: a CA file for HTTPS through the gateway's own CA
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "RequestLoop":
        self._thread = threading.Thread(target=self._run, daemon=True, name="request-loop")
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            sent = time.monotonic()
            next_at = sent + self.interval
            try:
                response = requests.post(
                    self.url,
                    json=self.payload,
                    timeout=self.timeout,
                    headers={"Connection": "close"},
                    verify=self.verify,
                )
                self.outcomes.append(Outcome(sent, response.status_code, response.headers.get("X-Worker-Id")))
            except requests.RequestException as error:
                self.outcomes.append(Outcome(sent, None, None, error=type(error).__name__))
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> "RequestLoop":
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout + 5)
        return self

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is None or not 200 <= o.status < 300]

    def workers_seen_after(self, moment: float) -> Counter:
        """How many successful answers each worker gave for requests sent after moment."""
        return Counter(o.worker for o in self.outcomes if o.sent_at >= moment and o.status == 200)

    def last_served_by(self, worker: str) -> float | None:
        """When the last request that worker answered was sent."""
        times = [o.sent_at for o in self.outcomes if o.worker == worker]
        return max(times) if times else None

    def summary(self) -> str:
        statuses = Counter(o.status if o.status is not None else o.error for o in self.outcomes)
        return f"{len(self.outcomes)} requests, {len(self.failures)} failed, by status {dict(statuses)}"
