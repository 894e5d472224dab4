"""Gather work from concurrent request threads into one model call.

One forward pass over eight sentences costs far less than eight passes over
one, but gunicorn hands each request its own thread. Threads put their items
on a queue and wait; one batching thread takes what is queued (waiting at
most `max_wait` for callers already known to be on their way), runs the
batch function once, and hands each caller exactly its own results.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Generic, Sequence, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Call(Generic[Result]):
    """One caller's items: results land in its slots, the last one wakes the caller."""

    __slots__ = ("results", "error", "remaining", "done", "lock")

    def __init__(self, count: int) -> None:
        self.results: list[Result | None] = [None] * count
        self.error: BaseException | None = None
        self.remaining = count
        self.done = threading.Event()
        self.lock = threading.Lock()

    def finish(self, slot: int, result: Result | None, error: BaseException | None) -> None:
        with self.lock:
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
        name: str = "ner-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait)
        self._queue: queue.SimpleQueue[tuple[_Call, int, Item]] = queue.SimpleQueue()
        # Callers announced so far, and how many of them have since queued their items (or gave up).
        self._announced = 0
        self._resolved = 0
        self._arriving_lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.items = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def announce(self) -> None:
        """Say a submit() is on its way (still tokenising), so a gathering batch waits for it."""
        with self._arriving_lock:
            self._announced += 1

    def withdraw(self) -> None:
        """Undo announce() for a caller that will not submit after all."""
        with self._arriving_lock:
            self._resolved += 1

    def submit(self, items: Sequence[Item], timeout: float | None = None, *, announced: bool = False) -> list[Result]:
        """Results for items, in their order; raises what the batch raised, or TimeoutError."""
        if not announced:
            self.announce()
        call: _Call[Result] = _Call(len(items))
        try:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            for slot, item in enumerate(items):
                self._queue.put((call, slot, item))
        finally:
            self.withdraw()
        if not items:
            return []
        if not call.done.wait(timeout):
            raise TimeoutError(f"no result from the model within {timeout:.1f}s")
        if call.error is not None:
            raise call.error
        return call.results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the batching thread after the work already queued."""
        self._closed = True
        self._queue.put(None)  # type: ignore[arg-type]
        self._thread.join(timeout=5)

    def _gather(self, first: tuple[_Call, int, Item]) -> list[tuple[_Call, int, Item]]:
        """The first item plus whatever arrives before the batch is full or the wait is over."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        # Wait only for callers announced before this batch began: under steady load new ones
        # keep coming, and waiting for them too would hold every batch for the full max_wait.
        awaited = self._announced
        while len(batch) < self.max_batch:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._resolved >= awaited:
                    break
                try:
                    entry = self._queue.get(timeout=min(remaining, 0.0005))
                except queue.Empty:
                    continue
            if entry is None:
                self._queue.put(None)  # type: ignore[arg-type]
                break
            batch.append(entry)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            try:
                results = self._run_batch([item for _, _, item in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function gave {len(results)} results for {len(batch)} items")
            except BaseException as error:  # noqa: BLE001 - handed to every caller of this batch
                logger.warning("batch of %d items failed", len(batch), exc_info=True)
                for call, slot, _ in batch:
                    call.finish(slot, None, error)
                continue
            self.batches += 1
            self.items += len(batch)
            for (call, slot, _), result in zip(batch, results):
                call.finish(slot, result, None)
