"""The slot queue: requests wait their turn up to the deadline, in a bounded queue, oldest first."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from tests.support.waiting import wait_for
from tests.unit.fake_backend import QueueRecorder
from worker.admission import DEADLINE, QUEUE_FULL, AdmissionPolicy, Refused, ServiceRate, SlotQueue


class Holder:
    """Holds one slot of a queue in a thread until released."""

    def __init__(self, queue: SlotQueue) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(queue,))
        self.thread.start()
        assert self.entered.wait(5)

    def _hold(self, queue: SlotQueue) -> None:
        with queue.admitted():
            self.entered.set()
            self.release.wait(10)

    def done(self) -> None:
        self.release.set()
        self.thread.join(5)


def one_slot(deadline_seconds: float, max_queue: int = 4) -> SlotQueue:
    return SlotQueue(1, AdmissionPolicy(deadline_seconds=deadline_seconds, max_queue=max_queue))


@contextmanager
def held(queue: SlotQueue) -> Iterator[Holder]:
    """The block runs while another thread holds a slot of the queue."""
    holder = Holder(queue)
    try:
        yield holder
    finally:
        holder.done()


def refusal(queue: SlotQueue) -> Refused:
    """Ask for a slot, which must be refused; the refusal."""
    with pytest.raises(Refused) as refused:
        with queue.admitted():
            pass
    return refused.value


def timed_refusal(queue: SlotQueue) -> tuple[Refused, float]:
    """The refusal of a request that asks while the only slot is held, and the seconds it took."""
    with held(queue):
        started = time.monotonic()
        refused = refusal(queue)
        return refused, time.monotonic() - started


def wait_waiting(queue: SlotQueue, count: int) -> None:
    """Until `count` requests wait in the queue for a slot."""
    wait_for(lambda: queue.waiting == count, 5, f"{count} requests waiting in the queue", interval=0.001)


def attempt(queue: SlotQueue, outcomes: list, label: str) -> threading.Thread:
    """A thread that tries to get a slot and notes what happened."""

    def run() -> None:
        try:
            with queue.admitted():
                outcomes.append(label)
        except Refused as refused:
            outcomes.append((label, refused.reason))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_request_starts_at_once_while_a_slot_is_free():
    queue = SlotQueue(2, AdmissionPolicy(deadline_seconds=5.0, max_queue=4))
    queue.observer = recorder = QueueRecorder()
    started = time.monotonic()
    with queue.admitted():
        pass
    assert time.monotonic() - started < 0.5
    assert recorder.waits == [0.0] and queue.waiting == 0


def test_a_waiting_request_starts_when_a_slot_frees_within_the_deadline():
    queue = one_slot(5.0)
    holder, outcomes = Holder(queue), []
    waiter = attempt(queue, outcomes, "second")
    wait_waiting(queue, 1)
    holder.done()
    waiter.join(5)
    assert outcomes == ["second"]


def test_waiting_requests_start_in_arrival_order():
    queue = one_slot(5.0, max_queue=8)
    holder, outcomes, threads = Holder(queue), [], []
    for label in "abcde":
        threads.append(attempt(queue, outcomes, label))
        wait_waiting(queue, len(threads))
    holder.done()
    for thread in threads:
        thread.join(5)
    assert outcomes == list("abcde")


def test_a_request_that_cannot_start_within_the_deadline_is_refused_for_the_deadline():
    refused, took = timed_refusal(one_slot(0.1))
    assert refused.reason == DEADLINE and "100 ms" in refused.description
    assert 0.09 <= took < 2.0


def test_a_refused_waiter_leaves_the_queue():
    queue = one_slot(0.05, max_queue=1)
    queue.observer = recorder = QueueRecorder()
    with held(queue):
        refusal(queue)
        assert queue.waiting == 0 and recorder.lengths == [1, 0]
        assert refusal(queue).reason == DEADLINE  # the queue has room again: refused by the deadline


def test_a_request_that_finds_the_queue_full_is_refused_at_once():
    queue, outcomes = one_slot(5.0, max_queue=1), []
    with held(queue):
        waiter = attempt(queue, outcomes, "queued")
        wait_waiting(queue, 1)
        started = time.monotonic()
        refused = refusal(queue)
        assert time.monotonic() - started < 0.5
    waiter.join(5)
    assert refused.reason == QUEUE_FULL and "1 requests" in refused.description
    assert outcomes == ["queued"]


def test_deadline_zero_refuses_at_once_when_no_slot_is_free():
    queue = one_slot(0.0, max_queue=128)
    refused, took = timed_refusal(queue)
    assert took < 0.5
    assert refused.reason == DEADLINE and queue.waiting == 0


def test_a_freed_slot_goes_to_the_waiting_request_not_to_a_newcomer():
    queue = one_slot(5.0)
    order: list[str] = []

    def waiter() -> None:
        with queue.admitted():
            order.append("waiter")

    with queue.admitted():
        thread = threading.Thread(target=waiter)
        thread.start()
        wait_waiting(queue, 1)
    # This thread frees the slot and asks again at once, before the waiter's thread runs.
    with queue.admitted():
        order.append("newcomer")
    thread.join(5)
    assert order == ["waiter", "newcomer"]


def test_a_started_request_reports_how_long_it_waited():
    queue = one_slot(5.0)
    queue.observer = recorder = QueueRecorder()
    holder, outcomes = Holder(queue), []
    waiter = attempt(queue, outcomes, "second")
    wait_waiting(queue, 1)
    time.sleep(0.05)
    holder.done()
    waiter.join(5)
    assert recorder.waits[0] == 0.0 and recorder.waits[1] >= 0.04
    assert recorder.lengths == [1, 0]


def test_a_slot_queue_needs_a_slot():
    with pytest.raises(ValueError):
        SlotQueue(0, AdmissionPolicy(deadline_seconds=1.0, max_queue=1))


def test_before_anything_was_measured_no_wait_is_predicted():
    assert ServiceRate().expected_wait(1000) == 0.0


def test_the_predicted_wait_follows_the_measured_pace():
    rate = ServiceRate(smoothing=0.5)
    rate.observe(10, 1.0)
    assert rate.expected_wait(20) == pytest.approx(2.0)
    rate.observe(10, 3.0)
    assert rate.expected_wait(10) == pytest.approx(2.0)


def test_a_request_the_queue_ahead_would_keep_past_the_deadline_is_refused_on_arrival():
    queue = one_slot(0.5, max_queue=100)
    queue.rate.observe(1, 0.2)  # each request holds the slot 0.2 s
    waiters = [threading.Thread(target=lambda: queue.admitted().__enter__()) for _ in range(2)]
    with held(queue):
        for waiter in waiters:
            waiter.start()
        wait_waiting(queue, 2)
        started = time.monotonic()
        assert refusal(queue).reason == DEADLINE
        assert time.monotonic() - started < 0.1  # at once, not after waiting out the deadline
