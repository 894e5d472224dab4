"""The tests' poller: returns once the condition holds, or fails naming what it waited for."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.waiting import wait_for, wait_outcomes


def test_returns_the_seconds_taken_once_the_condition_holds():
    calls = itertools.count()
    took = wait_for(lambda: next(calls) >= 3, 5, "the third probe", interval=0.01)
    assert next(calls) == 4
    assert 0.02 <= took < 1.0


def test_a_condition_never_met_raises_timeout_error_naming_what_was_awaited():
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timed out after 0.2s waiting for the moon$"):
        wait_for(lambda: False, 0.2, "the moon", interval=0.01)
    assert 0.2 <= time.monotonic() - started < 1.0


def test_a_probe_that_raises_is_not_yet_and_its_last_error_is_in_the_timeout():
    def probe() -> bool:
        raise ConnectionRefusedError("port 9 closed")

    with pytest.raises(TimeoutError, match=r"the last probe raised ConnectionRefusedError: port 9 closed"):
        wait_for(probe, 0.1, "a listener", interval=0.01)


def test_a_probe_that_raises_and_then_holds_ends_the_wait():
    calls = itertools.count()

    def probe() -> bool:
        if next(calls) < 2:
            raise OSError("not yet")
        return True

    wait_for(probe, 5, "the third probe", interval=0.01)
    assert next(calls) == 3


def test_an_assertion_in_the_probe_fails_at_once():
    def probe() -> bool:
        raise AssertionError("a refusal turned into a 200")

    started = time.monotonic()
    with pytest.raises(AssertionError, match="a refusal turned into a 200"):
        wait_for(probe, 5, "refusals", interval=0.01)
    assert time.monotonic() - started < 1.0


def test_the_timeout_carries_the_context_on_timeout_gives():
    with pytest.raises(TimeoutError, match=r"waiting for consul\n--- consul log ---"):
        wait_for(lambda: False, 0.05, "consul", interval=0.01, on_timeout=lambda: "--- consul log ---")


def test_wait_outcomes_counts_from_the_outcomes_the_loop_already_has():
    outcomes = ["a", "b", "c"]
    calls = itertools.count()

    def grow() -> list[str]:
        if next(calls) >= 1:
            outcomes.append("x")
        return outcomes

    wait_outcomes(grow, 2, timeout=5)
    assert len(outcomes) == 5


def test_wait_outcomes_times_out_when_the_loop_stalls():
    with pytest.raises(TimeoutError, match=r"2 more request outcomes \(to 3\)"):
        wait_outcomes(["only one"], 2, timeout=0.05)
