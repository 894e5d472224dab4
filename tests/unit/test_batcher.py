"""The micro-batcher: one model call for many concurrent callers, each getting exactly its own results."""

from __future__ import annotations

import threading
import time

import pytest

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
