"""registrar/retrying.py: retries of a failing call through stamina, polls of a condition on injectable time."""

from __future__ import annotations

import itertools
import logging

import pytest
import stamina

from registrar.retrying import poll, retry_call
from tests.unit.fake_clock import FakeClock


class NotYet(Exception):
    pass


def failing(times: int, error: Exception):
    """A call that raises error its first `times` calls, then answers with the number of the call."""
    calls = itertools.count(1)

    def call() -> int:
        number = next(calls)
        if number <= times:
            raise error
        return number

    return call


def test_a_call_is_retried_until_it_stops_raising():
    assert retry_call(failing(2, NotYet("starting")), on=NotYet, timeout=5, interval=0.001) == 3


def test_an_error_not_named_goes_through_at_once():
    call = failing(1, KeyError("bug"))
    with pytest.raises(KeyError):
        retry_call(call, on=NotYet, timeout=5, interval=0.001)
    assert call() == 2


def test_at_the_timeout_the_last_error_goes_through():
    with pytest.raises(NotYet, match="still starting"):
        retry_call(failing(10**9, NotYet("still starting")), on=NotYet, timeout=0.05, interval=0.01)


def test_retries_wait_the_fixed_interval_and_log_at_debug_only(caplog):
    caplog.set_level(logging.DEBUG, logger="registrar")
    retry_call(failing(3, NotYet("starting")), on=NotYet, timeout=5, interval=0.01)
    retries = [record for record in caplog.records if record.getMessage().startswith("retry_scheduled")]
    assert [record.levelno for record in retries] == [logging.DEBUG] * 3
    assert {record.fields["wait"] for record in retries} == {0.01}


def test_stamina_test_mode_caps_the_attempts():
    with stamina.set_testing(True, attempts=2), pytest.raises(NotYet):
        retry_call(failing(2, NotYet("starting")), on=NotYet, timeout=60, interval=10)


def test_a_poll_returns_the_seconds_its_clock_says_the_condition_took():
    clock = FakeClock()
    answers = iter([False, False, True])

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert poll(lambda: next(answers), timeout=5, interval=0.5, sleep=sleep, clock=clock) == pytest.approx(1.0)


def test_a_poll_gives_up_with_none_after_the_timeout():
    clock = FakeClock()
    asked = itertools.count()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert poll(lambda: next(asked) < 0, timeout=1.0, interval=0.25, sleep=sleep, clock=clock) is None
    assert next(asked) == 5  # at 0, 0.25, 0.5, 0.75 and 1.0


def test_an_ignored_error_in_a_poll_counts_as_not_yet():
    condition = failing(2, OSError("no listener"))
    assert poll(condition, timeout=5, interval=0.001, ignore=OSError) is not None


def test_an_error_a_poll_does_not_ignore_goes_through():
    with pytest.raises(OSError):
        poll(failing(1, OSError("no listener")), timeout=5, interval=0.001)
