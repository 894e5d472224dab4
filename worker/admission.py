"""Admission to the model: a request waits its turn up to a deadline, in a bounded queue.

A worker refuses a request (429) only when it cannot start within the queue
deadline or when the queue is already full at its arrival, the way Triton's
dynamic batcher queues requests and rejects them by queue policy. A deadline
of 0 keeps the earlier rule: start now, on a free slot, or be refused.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

DEADLINE = "deadline"
QUEUE_FULL = "queue_full"
REASONS = (DEADLINE, QUEUE_FULL)


class Refused(Exception):
    """The model could not take this request in time; the HTTP layer answers 429 + Retry-After."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


@dataclass(frozen=True)
class AdmissionPolicy:
    """How long a request may wait to start, and how many may wait at once."""

    deadline_seconds: float
    max_queue: int

    def refuse_late(self) -> Refused:
        if self.deadline_seconds <= 0:
            return Refused(DEADLINE, "every inference slot of this worker is busy; retry shortly")
        return Refused(
            DEADLINE,
            f"the model could not start this request within {self.deadline_seconds * 1000:.0f} ms; retry shortly",
        )

    def refuse_full(self) -> Refused:
        return Refused(
            QUEUE_FULL, f"{self.max_queue} requests are already waiting for the model of this worker; retry shortly"
        )


class ServiceRate:
    """How long the model takes per unit of queued work, smoothed over recent batches or requests.

    A request that the queue ahead of it will keep from starting within the deadline is refused
    on arrival rather than after waiting the whole deadline: under overload, waiting refusals would
    hold a thread each for the full deadline, and the threads (and the health check queued behind
    them) run out long before the model does.
    """

    def __init__(self, smoothing: float = 0.2) -> None:
        self._smoothing = smoothing
        self._seconds_per_unit: float | None = None

    def observe(self, units: int, seconds: float) -> None:
        if units <= 0 or seconds < 0:
            return
        sample = seconds / units
        previous = self._seconds_per_unit
        self._seconds_per_unit = sample if previous is None else previous + self._smoothing * (sample - previous)

    def expected_wait(self, units_ahead: float) -> float:
        """Seconds until work behind units_ahead can start; 0 before anything was measured."""
        per_unit = self._seconds_per_unit
        return 0.0 if per_unit is None else per_unit * units_ahead


class QueueObserver(Protocol):
    """Where queue figures go (the metrics): queue length after each change, wait before a start."""

    def observe_queue_length(self, waiting: int) -> None: ...

    def observe_queue_wait(self, seconds: float) -> None: ...


class NoObserver:
    """Discards queue figures (tests, benchmarks without metrics)."""

    def observe_queue_length(self, waiting: int) -> None:
        return None

    def observe_queue_wait(self, seconds: float) -> None:
        return None


class _Waiter:
    __slots__ = ("granted", "event")

    def __init__(self) -> None:
        self.granted = False
        self.event = threading.Event()


class SlotQueue:
    """At most `slots` requests run at once; later ones wait in arrival order, each up to the deadline.

    A finishing request hands its slot straight to the oldest waiter, so a newcomer
    never overtakes a request that is already waiting.
    """

    def __init__(self, slots: int, policy: AdmissionPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self.policy = policy
        self.observer: QueueObserver = NoObserver()
        self._clock = clock
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: deque[_Waiter] = deque()
        self.rate = ServiceRate()  # seconds per request in a slot

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a slot for the body of the with-block; raises Refused if none comes in time."""
        self._acquire()
        started = self._clock()
        try:
            yield
        finally:
            self.rate.observe(1, self._clock() - started)
            self._release()

    def _acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                self.observer.observe_queue_wait(0.0)
                return
            if self.policy.deadline_seconds <= 0:
                raise self.policy.refuse_late()
            if len(self._waiting) >= self.policy.max_queue:
                raise self.policy.refuse_full()
            if self.rate.expected_wait((len(self._waiting) + 1) / self.slots) > self.policy.deadline_seconds:
                raise self.policy.refuse_late()
            waiter = _Waiter()
            self._waiting.append(waiter)
            self.observer.observe_queue_length(len(self._waiting))
        arrived = self._clock()
        waiter.event.wait(self.policy.deadline_seconds)
        with self._lock:
            # Decided under the lock: a slot handed over just as the wait timed out still counts.
            if not waiter.granted:
                self._waiting.remove(waiter)
                self.observer.observe_queue_length(len(self._waiting))
                raise self.policy.refuse_late()
        self.observer.observe_queue_wait(self._clock() - arrived)

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                waiter = self._waiting.popleft()
                waiter.granted = True
                waiter.event.set()
                self.observer.observe_queue_length(len(self._waiting))
            else:
                self._free += 1
