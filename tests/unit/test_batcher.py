"""The micro-batcher: one model call for many concurrent callers, each getting exactly its own results."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.waiting import wait_for
from tests.unit.fake_backend import QueueRecorder
from worker.admission import DEADLINE, QUEUE_FULL, AdmissionPolicy, Refused
from worker.backends.batcher import MicroBatcher


class Recorder:
    """A batch function that doubles numbers and remembers every batch it was given."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item * 2 for item in items]


def run_concurrently(batcher: MicroBatcher, requests: list[list[int]]) -> list[list[int] | BaseException]:
    results: list[list[int] | BaseException] = [[] for _ in requests]
    start = threading.Barrier(len(requests))

    def call(index: int) -> None:
        start.wait()
        try:
            results[index] = batcher.submit(requests[index], timeout=10)
        except BaseException as error:  # noqa: BLE001
            results[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_every_caller_gets_its_own_results_in_its_own_order():
    batcher = MicroBatcher(Recorder(delay=0.005), max_batch=8, max_wait=0.005)
    requests = [[i * 10 + j for j in range(i % 4 + 1)] for i in range(24)]
    results = run_concurrently(batcher, requests)
    assert results == [[item * 2 for item in request] for request in requests]
    batcher.close()


def test_concurrent_callers_share_model_calls_and_no_call_exceeds_max_batch():
    recorder = Recorder(delay=0.01)
    batcher = MicroBatcher(recorder, max_batch=4, max_wait=0.005)
    run_concurrently(batcher, [[i] for i in range(16)])
    assert max(len(batch) for batch in recorder.batches) <= 4
    assert len(recorder.batches) < 16  # some calls were shared
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(16))
    batcher.close()


def test_a_lone_request_is_not_held_for_the_wait():
    batcher = MicroBatcher(Recorder(), max_batch=16, max_wait=1.0)
    started = time.monotonic()
    assert batcher.submit([1, 2, 3]) == [2, 4, 6]
    assert time.monotonic() - started < 0.5  # nobody else is on the way: no 1 s wait
    batcher.close()


def test_an_announced_caller_is_waited_for_but_only_up_to_max_wait():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=16, max_wait=0.3)
    batcher.announce()  # someone is still tokenising
    started = time.monotonic()
    assert batcher.submit([1]) == [2]
    waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0  # bounded by max_wait even though the announced caller never came
    batcher.withdraw()
    batcher.close()


def test_an_announced_caller_joins_the_batch_being_gathered():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=16, max_wait=2.0)
    batcher.announce()
    late = threading.Timer(0.05, lambda: results.append(batcher.submit([5], announced=True)))
    results: list[list[int]] = []
    late.start()
    assert batcher.submit([1]) == [2]
    late.join()
    assert results == [[10]]
    assert recorder.batches == [[1, 5]]
    batcher.close()


def test_a_failing_batch_fails_its_callers_and_the_batcher_keeps_working():
    batcher = MicroBatcher(Recorder(fail_on=13), max_batch=1, max_wait=0.0)
    with pytest.raises(ValueError, match="bad item 13"):
        batcher.submit([13])
    assert batcher.submit([4]) == [8]
    batcher.close()


def test_a_wrong_result_count_is_an_error_not_a_misassignment():
    batcher = MicroBatcher(lambda items: items[:-1], max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="results for"):
        batcher.submit([1, 2])
    batcher.close()


def test_a_stuck_model_times_the_caller_out():
    release = threading.Event()
    batcher = MicroBatcher(lambda items: (release.wait(5), items)[1], max_batch=4, max_wait=0.0)
    with pytest.raises(TimeoutError):
        batcher.submit([1], timeout=0.1)
    release.set()
    batcher.close()


def test_empty_submit_and_closed_batcher():
    batcher = MicroBatcher(Recorder(), max_batch=2)
    assert batcher.submit([]) == []
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit([1])


# ------------------------------------------------------------------ the batcher as the admission queue


class Gate:
    """A batch function that blocks on its first batch until opened, so requests pile up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.open = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        self.open.wait(10)
        return [item * 2 for item in items]


def wait_waiting(batcher: MicroBatcher, count: int) -> None:
    """Until `count` callers wait in the batcher's queue."""
    wait_for(lambda: batcher.waiting == count, 5, f"{count} callers waiting in the batcher", interval=0.001)


def in_thread(batcher: MicroBatcher, items: list[int], outcomes: dict, key) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[key] = batcher.submit(items, timeout=10)
        except BaseException as error:  # noqa: BLE001
            outcomes[key] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def busy_batcher(max_queue: int = 8, deadline: float = 5.0, max_batch: int = 16):
    """A batcher whose model is stuck in a first batch, with admission."""
    gate = Gate()
    batcher = MicroBatcher(
        gate,
        max_batch=max_batch,
        max_wait=0.0,
        admission=AdmissionPolicy(deadline_seconds=deadline, max_queue=max_queue),
    )
    outcomes: dict = {}
    first = in_thread(batcher, [0], outcomes, "first")
    assert gate.entered.wait(5)
    return gate, batcher, outcomes, [first]


def test_the_next_batch_takes_every_waiting_request_not_a_fixed_number():
    gate, batcher, outcomes, threads = busy_batcher(max_queue=16, max_batch=16)
    for i in range(1, 11):
        threads.append(in_thread(batcher, [i], outcomes, i))
    wait_waiting(batcher, 10)
    gate.open.set()
    for thread in threads:
        thread.join(5)
    assert sorted(gate.batches[1]) == list(range(1, 11))  # all ten waiting requests in one pass
    assert outcomes == {"first": [0], **{i: [i * 2] for i in range(1, 11)}}
    batcher.close()


def test_a_request_that_finds_the_batchers_queue_full_is_refused_at_once():
    gate, batcher, outcomes, threads = busy_batcher(max_queue=2)
    threads += [in_thread(batcher, [i], outcomes, i) for i in (1, 2)]
    wait_waiting(batcher, 2)
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        batcher.submit([3])
    assert time.monotonic() - started < 0.5
    assert refused.value.reason == QUEUE_FULL
    gate.open.set()
    for thread in threads:
        thread.join(5)
    assert all(3 not in batch for batch in gate.batches)
    assert outcomes[1] == [2] and outcomes[2] == [4]
    batcher.close()


def test_a_request_that_cannot_start_within_the_deadline_is_refused_and_never_reaches_the_model():
    gate, batcher, outcomes, threads = busy_batcher(deadline=0.1)
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        batcher.submit([7])
    assert refused.value.reason == DEADLINE
    assert 0.09 <= time.monotonic() - started < 2.0
    assert batcher.waiting == 0
    gate.open.set()
    threads[0].join(5)
    assert batcher.submit([1]) == [2]  # the batcher carries on
    assert all(7 not in batch for batch in gate.batches)
    batcher.close()


def test_a_request_larger_than_a_batch_is_served_across_batches_once_started():
    gate, batcher, outcomes, threads = busy_batcher(max_batch=4)
    threads.append(in_thread(batcher, list(range(1, 11)), outcomes, "big"))
    wait_waiting(batcher, 1)
    gate.open.set()
    for thread in threads:
        thread.join(5)
    assert outcomes["big"] == [i * 2 for i in range(1, 11)]
    assert [len(batch) for batch in gate.batches[1:]] == [4, 4, 2]
    batcher.close()


def test_an_urgent_call_goes_first_even_past_a_full_queue():
    gate, batcher, outcomes, threads = busy_batcher(max_queue=1)
    threads.append(in_thread(batcher, [1], outcomes, 1))
    wait_waiting(batcher, 1)
    probe = threading.Thread(
        target=lambda: outcomes.__setitem__("probe", batcher.submit([99], timeout=10, urgent=True))
    )
    probe.start()
    wait_for(lambda: len(batcher._calls) == 2, 5, "both calls queued", interval=0.001)  # noqa: SLF001
    gate.open.set()
    for thread in threads + [probe]:
        thread.join(5)
    assert outcomes["probe"] == [198]
    assert gate.batches[1][0] == 99
    batcher.close()


def test_the_queue_reports_its_length_and_each_requests_wait():
    gate, batcher, outcomes, threads = busy_batcher()
    batcher.observer = seen = QueueRecorder()
    threads += [in_thread(batcher, [i], outcomes, i) for i in (1, 2)]
    wait_waiting(batcher, 2)
    time.sleep(0.02)
    gate.open.set()
    for thread in threads:
        thread.join(5)
    assert seen.lengths == [1, 2, 0]
    assert len(seen.waits) == 2 and min(seen.waits) >= 0.015
    batcher.close()


def test_admission_needs_a_deadline_and_room_in_the_queue():
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), admission=AdmissionPolicy(deadline_seconds=0.0, max_queue=4))
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), admission=AdmissionPolicy(deadline_seconds=1.0, max_queue=0))


def test_a_recent_good_batch_is_reported_and_a_failed_one_is_not():
    batcher = MicroBatcher(Recorder(fail_on=13), max_batch=1, max_wait=0.0)
    assert not batcher.succeeded_within(10)  # nothing ran yet
    batcher.submit([1])
    assert batcher.succeeded_within(10)
    assert not batcher.succeeded_within(0)
    with pytest.raises(ValueError):
        batcher.submit([13])
    assert not batcher.succeeded_within(10)
    batcher.close()


def test_a_request_the_queued_items_would_keep_past_the_deadline_is_refused_on_arrival():
    gate, batcher, outcomes, threads = busy_batcher(max_queue=64, deadline=0.5, max_batch=16)
    batcher.rate.observe(16, 0.16)  # 10 ms of model time per item, as measured under load
    threads.append(in_thread(batcher, list(range(100, 160)), outcomes, "big"))  # 0.6 s of work ahead
    wait_waiting(batcher, 1)
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        batcher.submit([999])
    assert refused.value.reason == DEADLINE
    assert time.monotonic() - started < 0.1
    gate.open.set()
    for thread in threads:
        thread.join(5)
    assert all(999 not in batch for batch in gate.batches)  # the refused item never reached the model
