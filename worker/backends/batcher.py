"""Gather work from concurrent request threads into one model call.

One forward pass over eight sentences costs far less than eight passes over
one, but gunicorn hands each request its own thread. Threads put their items
in a queue and wait; one batching thread takes what is queued, oldest request
first (waiting at most `max_wait` for callers already known to be on their
way), runs the batch function once, and hands each caller exactly its own
results.

Given an AdmissionPolicy, that queue is the worker's admission queue: it holds
at most `max_queue` requests that have not started, a request that arrives to
a full queue is refused at once, and one that is still waiting when its
deadline passes leaves the queue refused (worker.admission.Refused), as does
one that the items queued ahead of it, at the model's measured pace, would keep
from starting in time (refused on arrival, so it holds no thread meanwhile).
Batches are taken from whatever waits, so a deeper queue means fuller forward
passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Generic, Sequence, TypeVar

from worker.admission import AdmissionPolicy, NoObserver, QueueObserver, ServiceRate

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Call(Generic[Item, Result]):
    """One caller's items: how many a batch has taken, and where their results land."""

    __slots__ = (
        "items",
        "taken",
        "results",
        "error",
        "remaining",
        "started",
        "started_flag",
        "done",
        "arrived",
        "admitted",
    )

    def __init__(self, items: Sequence[Item], arrived: float, admitted: bool) -> None:
        self.items = items
        self.taken = 0  # items already in a batch; guarded by the batcher's lock
        self.results: list[Result | None] = [None] * len(items)
        self.error: BaseException | None = None
        self.remaining = len(items)
        self.started_flag = False  # set under the batcher's lock when the first item is taken
        self.started = threading.Event()
        self.done = threading.Event()
        self.arrived = arrived
        self.admitted = admitted  # went through admission (counted in the queue, bound by the deadline)

    def finish(self, slot: int, result: Result | None, error: BaseException | None) -> None:
        """Only the batching thread calls this, so no lock is needed."""
        if error is not None and self.error is None:
            self.error = error
        self.results[slot] = result
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()


class MicroBatcher(Generic[Item, Result]):
    """Runs `run_batch(items) -> results` (same order, same length) over items from many threads."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch: int = 16,
        max_wait: float = 0.002,
        admission: AdmissionPolicy | None = None,
        name: str = "ner-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if admission is not None and (admission.deadline_seconds <= 0 or admission.max_queue < 1):
            raise ValueError("a batcher's admission needs a deadline > 0 and max_queue >= 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait)
        self.admission = admission
        self.observer: QueueObserver = NoObserver()
        self._cond = threading.Condition()
        self._calls: deque[_Call[Item, Result]] = deque()  # calls with items not yet taken, oldest first
        self._unstarted = 0  # admitted calls in _calls none of whose items a batch has taken yet
        self._queued_items = 0  # items in _calls that no batch has taken yet
        self.rate = ServiceRate()  # seconds of model time per item
        # Callers announced so far, and how many of them have since queued their items (or gave up).
        self._announced = 0
        self._resolved = 0
        self._closed = False
        self.batches = 0
        self.items = 0
        self._last_outcome: tuple[float, bool] | None = None  # (when, succeeded) of the latest batch
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Admitted requests that have not started yet."""
        return self._unstarted

    def succeeded_within(self, seconds: float) -> bool:
        """The latest batch ended less than `seconds` ago, and well: the model works, no probe needed."""
        outcome = self._last_outcome
        return outcome is not None and outcome[1] and time.monotonic() - outcome[0] < seconds

    def announce(self) -> None:
        """Say a submit() is on its way (still tokenising), so a gathering batch waits for it."""
        with self._cond:
            self._announced += 1

    def withdraw(self) -> None:
        """Undo announce() for a caller that will not submit after all."""
        with self._cond:
            self._resolved += 1
            self._cond.notify()

    def submit(
        self, items: Sequence[Item], timeout: float | None = None, *, announced: bool = False, urgent: bool = False
    ) -> list[Result]:
        """Results for items, in their order; raises what the batch raised, Refused, or TimeoutError.

        urgent: goes to the front of the queue and past admission (the health probe, which
        must answer within the health check's timeout however long the queue is).
        """
        policy = None if urgent else self.admission
        call: _Call[Item, Result] = _Call(items, time.monotonic(), admitted=policy is not None)
        with self._cond:
            if announced:
                self._resolved += 1
            self._cond.notify()
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if not items:
                return []
            if policy is not None and self._unstarted >= policy.max_queue:
                raise policy.refuse_full()
            if policy is not None and self.rate.expected_wait(self._queued_items) > policy.deadline_seconds:
                raise policy.refuse_late()
            self._queued_items += len(items)
            if urgent:
                self._calls.appendleft(call)
            else:
                self._calls.append(call)
            if policy is not None:
                self._unstarted += 1
                self.observer.observe_queue_length(self._unstarted)
        if policy is not None and not call.started.wait(policy.deadline_seconds):
            with self._cond:
                # Decided under the lock: a batch that took the call as the wait ran out still serves it.
                if not call.started_flag:
                    self._calls.remove(call)
                    self._queued_items -= len(call.items)
                    self._unstarted -= 1
                    self.observer.observe_queue_length(self._unstarted)
                    raise policy.refuse_late()
        if not call.done.wait(timeout):
            raise TimeoutError(f"no result from the model within {timeout:.1f}s")
        if call.error is not None:
            raise call.error
        return call.results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the batching thread after the work already queued."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _gather(self) -> list[tuple[_Call[Item, Result], int, Item]]:
        """Items from the oldest calls until the batch is full or the wait is over; empty once closed."""
        batch: list[tuple[_Call[Item, Result], int, Item]] = []
        started: list[_Call[Item, Result]] = []
        with self._cond:
            while not self._calls:
                if self._closed:
                    return batch
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait
            # Wait only for callers announced before this batch began: under steady load new ones
            # keep coming, and waiting for them too would hold every batch for the full max_wait.
            awaited = self._announced
            while True:
                self._take(batch, started)
                if len(batch) >= self.max_batch:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._resolved >= awaited:
                    break
                self._cond.wait(remaining)
        now = time.monotonic()
        for call in started:
            call.started.set()
            if call.admitted:
                self.observer.observe_queue_wait(now - call.arrived)
        return batch

    def _take(self, batch: list, started: list) -> None:
        """Move items from the head of the queue into the batch; called with the lock held."""
        unstarted = self._unstarted
        while self._calls and len(batch) < self.max_batch:
            call = self._calls[0]
            if not call.started_flag:
                call.started_flag = True
                started.append(call)
                if call.admitted:
                    self._unstarted -= 1
            count = min(len(call.items) - call.taken, self.max_batch - len(batch))
            batch.extend((call, slot, call.items[slot]) for slot in range(call.taken, call.taken + count))
            call.taken += count
            self._queued_items -= count
            if call.taken == len(call.items):
                self._calls.popleft()
        if self._unstarted != unstarted:
            self.observer.observe_queue_length(self._unstarted)

    def _loop(self) -> None:
        while True:
            batch = self._gather()
            if not batch:
                return
            started = time.monotonic()
            try:
                results = self._run_batch([item for _, _, item in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function gave {len(results)} results for {len(batch)} items")
            except BaseException as error:  # noqa: BLE001 - handed to every caller of this batch
                self._last_outcome = (time.monotonic(), False)
                logger.warning("batch of %d items failed", len(batch), exc_info=True)
                for call, slot, _ in batch:
                    call.finish(slot, None, error)
                continue
            self._last_outcome = (time.monotonic(), True)
            if len(batch) >= max(1, self.max_batch // 2):  # a pace measured under load, not per lone item
                self.rate.observe(len(batch), self._last_outcome[0] - started)
            self.batches += 1
            self.items += len(batch)
            for (call, slot, _), result in zip(batch, results):
                call.finish(slot, result, None)
