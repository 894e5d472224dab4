"""Quiescence, consul-template's wait=MIN:MAX: a change reaches nginx after MIN without another, and
after MAX at most however often Consul keeps changing. On a fake clock; no test sleeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import scripted_consul
from tests.unit.fake_clock import FakeClock
from tests.unit.scripted_consul import WAIT, Timeline, upstream
from upstream_renderer.quiescence import Quiescence

WAIT_MIN, WAIT_MAX = WAIT


def started(clock: FakeClock) -> Quiescence:
    quiescence = Quiescence(WAIT, clock)
    quiescence.start()
    return quiescence


def test_a_change_waits_for_min_of_quiet():
    assert started(FakeClock()).remaining() == WAIT_MIN


def test_another_change_starts_min_of_quiet_again():
    clock = FakeClock()
    quiescence = started(clock)
    clock.now = 0.15
    quiescence.tick()
    assert quiescence.remaining() == pytest.approx(WAIT_MIN)


def test_changes_that_never_stop_wait_no_longer_than_max_after_the_first():
    clock = FakeClock()
    quiescence = started(clock)
    clock.now = WAIT_MAX - 0.05
    quiescence.tick()
    assert quiescence.remaining() == pytest.approx(0.05)


def test_nothing_is_left_to_wait_once_min_has_passed_quietly():
    clock = FakeClock()
    quiescence = started(clock)
    clock.now = WAIT_MIN + 1.0
    assert quiescence.remaining() == 0.0


def test_a_millisecond_left_counts_as_settled():
    clock = FakeClock()
    quiescence = started(clock)
    clock.now = WAIT_MIN - 0.0005
    assert quiescence.remaining() == 0.0


def run(tmp_path: Path, timeline: Timeline, end: float) -> list[tuple[float, str]]:
    """The loop with no hold-down, so only quiescence delays a change; nginx's reloads."""
    return scripted_consul.run(tmp_path, timeline, end, hold_down=0).reloads


def test_a_burst_of_changes_reaches_nginx_once_min_after_the_last_one(tmp_path):
    timeline = [
        (0.0, {"p1": "passing"}),
        (1.0, {"p1": "warning"}),
        (1.1, {"p1": "passing", "p2": "passing"}),
        (1.2, {"p1": "passing", "p2": "passing", "p3": "passing"}),
    ]
    reloads = run(tmp_path, timeline, end=10.0)
    assert len(reloads) == 2
    assert reloads[1][0] == pytest.approx(1.2 + WAIT_MIN)
    assert reloads[1][1] == upstream(p1="passing", p2="passing", p3="passing")


def test_changes_that_never_stop_reach_nginx_max_after_the_first(tmp_path):
    timeline: Timeline = [(0.0, {"p1": "passing"})]
    for step in range(1, 41):
        timeline.append((round(1.0 + step / 10 - 0.1, 1), {"p1": "warning" if step % 2 else "passing"}))
    reloads = run(tmp_path, timeline, end=10.0)
    assert reloads[1][0] == pytest.approx(1.0 + WAIT_MAX)
