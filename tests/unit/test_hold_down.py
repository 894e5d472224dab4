"""Reload hold-down: weight-only changes reach nginx at most once per interval, joins and leaves at once.

The renderer's loop runs here against a scripted Consul on a fake clock (tests/unit/scripted_consul.py):
minutes of flapping take milliseconds and no test sleeps.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tests.unit import scripted_consul
from tests.unit.fake_clock import FakeClock
from tests.unit.scripted_consul import FakeNginx, Timeline, upstream
from upstream_renderer.cli import build_parser
from upstream_renderer.holddown import HOLD_DOWN_ENV, HoldDown, upstream_members

HOLD_DOWN = 15.0


def run(tmp_path: Path, timeline: Timeline, end: float, hold_down: float = HOLD_DOWN) -> FakeNginx:
    """The loop over the timeline with a 15 s hold-down unless told otherwise; nginx's reloads."""
    return scripted_consul.run(tmp_path, timeline, end, hold_down)


def flapping(until: float, period: float = 2.0) -> list[tuple[float, dict[str, str]]]:
    """Two workers; the first turns warning and back every `period` seconds, as under overload."""
    timeline: list[tuple[float, dict[str, str]]] = [(0.0, {"p1": "passing", "p2": "passing"})]
    at, status = 1.0, "warning"
    while at <= until:
        timeline.append((at, {"p1": status, "p2": "passing"}))
        at, status = at + period, "passing" if status == "warning" else "warning"
    return timeline


# --------------------------------------------------------------------------- the decision


def test_members_are_the_server_addresses_whatever_their_weights_and_comments():
    assert upstream_members(upstream(p1="passing", p2="warning")) == ("127.0.0.1:1", "127.0.0.1:2")
    assert upstream_members(upstream(p1="passing")) != upstream_members(upstream(p1="passing", p2="passing"))


def test_the_empty_upstream_placeholder_is_a_member_of_its_own():
    assert upstream_members(upstream()) == ("127.0.0.1:1",)


def test_a_weight_change_right_after_a_weight_reload_is_held_until_the_interval_has_passed():
    clock = FakeClock()
    gate = HoldDown(HOLD_DOWN, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="warning")))
    clock.now = 4.0
    decision = gate.decide(upstream(p1="warning"), upstream(p1="passing"))
    assert not decision.apply and decision.change == "weights" and decision.due_at == HOLD_DOWN


def test_a_weight_change_once_the_interval_has_passed_is_applied():
    clock = FakeClock()
    gate = HoldDown(HOLD_DOWN, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="warning")))
    clock.now = HOLD_DOWN
    assert gate.decide(upstream(p1="warning"), upstream(p1="passing")).apply


def test_a_membership_change_is_applied_even_right_after_a_weight_reload():
    clock = FakeClock()
    gate = HoldDown(HOLD_DOWN, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="warning")))
    clock.now = 0.1
    decision = gate.decide(upstream(p1="warning"), upstream(p1="warning", p2="passing"))
    assert decision.apply and decision.change == "membership"


def test_a_membership_reload_does_not_start_the_interval():
    clock = FakeClock()
    gate = HoldDown(HOLD_DOWN, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="passing", p2="passing")))
    clock.now = 0.1
    assert gate.decide(upstream(p1="passing", p2="passing"), upstream(p1="warning", p2="passing")).apply


def test_hold_down_zero_applies_every_weight_change():
    clock = FakeClock()
    gate = HoldDown(0, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="warning")))
    assert gate.decide(upstream(p1="warning"), upstream(p1="passing")).apply


# --------------------------------------------------------------------------- the held change


def held_gate(clock: FakeClock) -> HoldDown:
    """A hold-down that has just reloaded weights, so the next weight change is held."""
    gate = HoldDown(HOLD_DOWN, clock)
    gate.applied(gate.decide(upstream(p1="passing"), upstream(p1="warning")))
    return gate


def test_a_held_change_waits_until_its_due_time():
    clock = FakeClock()
    gate = held_gate(clock)
    clock.now = 4.0
    gate.hold(upstream(p1="passing"), 1, gate.decide(upstream(p1="warning"), upstream(p1="passing")), 1)
    assert gate.holds(upstream(p1="passing")) and gate.due_at() == HOLD_DOWN


def test_a_newer_held_change_keeps_the_time_the_first_one_was_held_from():
    clock = FakeClock()
    gate = held_gate(clock)
    live = upstream(p1="warning", p2="passing")
    clock.now = 1.0
    gate.hold(upstream(p1="passing", p2="passing"), 2, gate.decide(live, upstream(p1="passing", p2="passing")), 2)
    clock.now = 3.0
    gate.hold(upstream(p1="passing", p2="warning"), 2, gate.decide(live, upstream(p1="passing", p2="warning")), 2)
    clock.now = 5.0
    assert gate.release() == 4000.0
    assert gate.due_at() is None


def test_releasing_with_nothing_held_reports_no_hold_time():
    assert HoldDown(HOLD_DOWN, FakeClock()).release() is None


def test_a_withdrawn_change_is_no_longer_held():
    clock = FakeClock()
    gate = held_gate(clock)
    gate.hold(upstream(p1="passing"), 1, gate.decide(upstream(p1="warning"), upstream(p1="passing")), 1)
    gate.withdraw()
    assert not gate.holds(upstream(p1="passing")) and gate.due_at() is None


# --------------------------------------------------------------------------- the loop


def test_a_flapping_worker_reloads_nginx_at_most_once_per_hold_down(tmp_path):
    nginx = run(tmp_path, flapping(until=60.0), end=90.0)
    weight_reloads = [at for at, _ in nginx.reloads[1:]]  # the first one is the start's render
    assert len(weight_reloads) <= 1 + 60 / HOLD_DOWN
    assert all(later - earlier >= HOLD_DOWN for earlier, later in zip(weight_reloads, weight_reloads[1:]))


def test_without_hold_down_every_flap_reloads_nginx(tmp_path):
    timeline = flapping(until=60.0)
    nginx = run(tmp_path, timeline, end=90.0, hold_down=0)
    assert len(nginx.reloads) == len(timeline)


def test_the_last_held_change_reaches_nginx_when_its_hold_down_ends(tmp_path):
    timeline = [(0.0, {"p1": "passing"}), (1.0, {"p1": "warning"}), (3.0, {"p1": "passing"})]
    nginx = run(tmp_path, timeline, end=40.0)
    first_weight_reload = nginx.reloads[1][0]
    due = first_weight_reload + HOLD_DOWN
    assert len(nginx.reloads) == 3
    assert due <= nginx.reloads[2][0] <= due + 0.05
    assert nginx.reloads[2][1] == upstream(p1="passing")


def test_a_join_during_a_hold_reaches_nginx_at_once_with_the_current_weights(tmp_path):
    timeline = [
        (0.0, {"p1": "passing"}),
        (1.0, {"p1": "warning"}),
        (3.0, {"p1": "passing"}),
        (5.0, {"p1": "passing", "p2": "passing"}),
    ]
    nginx = run(tmp_path, timeline, end=40.0)
    joined_at, joined_text = nginx.reloads[2]
    assert 5.0 <= joined_at <= 5.5
    assert joined_text == upstream(p1="passing", p2="passing")
    assert len(nginx.reloads) == 3  # nothing was left to apply when the hold-down ended


def test_a_leave_during_a_hold_reaches_nginx_at_once(tmp_path):
    timeline = [
        (0.0, {"p1": "passing", "p2": "passing"}),
        (1.0, {"p1": "warning", "p2": "passing"}),
        (3.0, {"p1": "passing", "p2": "passing"}),
        (5.0, {"p1": "passing", "p2": "critical"}),
    ]
    nginx = run(tmp_path, timeline, end=40.0)
    left_at, left_text = nginx.reloads[2]
    assert 5.0 <= left_at <= 5.5 and left_text == upstream(p1="passing")


def test_a_held_change_that_consul_takes_back_is_never_applied(tmp_path):
    timeline = [(0.0, {"p1": "passing"}), (1.0, {"p1": "warning"}), (3.0, {"p1": "passing"}), (5.0, {"p1": "warning"})]
    nginx = run(tmp_path, timeline, end=40.0)
    assert len(nginx.reloads) == 2 and nginx.reloads[-1][1] == upstream(p1="warning")


def test_every_decision_is_one_log_line_saying_held_or_reloaded_and_why(tmp_path, caplog):
    timeline = [(0.0, {"p1": "passing"}), (1.0, {"p1": "warning"}), (3.0, {"p1": "passing"})]
    with caplog.at_level(logging.INFO, logger="render_upstream"):
        run(tmp_path, timeline, end=40.0)
    decisions = [
        (r.fields["decision"], r.fields["change"]) for r in caplog.records if "decision" in getattr(r, "fields", {})
    ]
    assert decisions == [("reloaded", "first"), ("reloaded", "weights"), ("held", "weights"), ("reloaded", "weights")]
    assert all(r.fields["reason"] for r in caplog.records if "decision" in getattr(r, "fields", {}))


# --------------------------------------------------------------------------- command line


def test_the_hold_down_defaults_to_15_seconds(monkeypatch):
    monkeypatch.delenv(HOLD_DOWN_ENV, raising=False)
    assert build_parser().parse_args(["--out", "x"]).hold_down == 15.0


def test_the_hold_down_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(HOLD_DOWN_ENV, "0")
    assert build_parser().parse_args(["--out", "x"]).hold_down == 0.0
