"""The recovery grace: while Consul comes back from an outage or a state loss, instances it has not
listed again stay in the upstream; once the grace ends, Consul's list is the last word. On a fake clock."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fake_clock import FakeClock
from tests.unit.scripted_consul import TEMPLATE, WAIT, entry, upstream
from upstream_renderer.dependency import Instance
from upstream_renderer.nginx import NginxControl
from upstream_renderer.recovery import Recovery
from upstream_renderer.runner import Runner

GRACE = 15.0


def instance(service_id: str, port: int, status: str = "passing") -> Instance:
    return Instance(node="n1", id=service_id, name="ner-worker", address="127.0.0.1", port=port, status=status)


def recovering(clock: FakeClock) -> Recovery:
    recovery = Recovery(GRACE, clock)
    recovery.start("consul lost its state")
    return recovery


def ids(instances: list[Instance]) -> dict[str, str]:
    return {i.id: i.status for i in instances}


def test_outside_recovery_consuls_list_is_taken_as_it_is():
    live = [instance("a", 8101)]
    assert Recovery(GRACE, FakeClock()).keep([], live) == []


def test_during_recovery_an_instance_consul_does_not_list_yet_stays_in_the_upstream():
    kept = recovering(FakeClock()).keep([instance("b", 8103)], live=[instance("a", 8101), instance("b", 8103)])
    assert ids(kept) == {"a": "passing", "b": "passing"}


def test_during_recovery_a_live_instance_listed_critical_stays_as_it_was():
    # A fresh registration is critical until its first check passes.
    kept = recovering(FakeClock()).keep([instance("a", 8101, "critical")], live=[instance("a", 8101)])
    assert ids(kept) == {"a": "passing"}


def test_during_recovery_a_live_instance_in_maintenance_is_let_go_at_once():
    kept = recovering(FakeClock()).keep([instance("a", 8101, "maintenance")], live=[instance("a", 8101)])
    assert ids(kept) == {"a": "maintenance"}


def test_during_recovery_an_address_registered_by_a_new_instance_drops_the_old_one():
    # The worker restarted on the same port: a new ID, critical until its model has loaded.
    kept = recovering(FakeClock()).keep(
        [instance("new", 8101, "critical"), instance("b", 8103)], live=[instance("old", 8101), instance("b", 8103)]
    )
    assert ids(kept) == {"new": "critical", "b": "passing"}


def test_once_the_grace_has_passed_an_instance_consul_forgot_is_dropped():
    clock = FakeClock()
    recovery = recovering(clock)
    clock.now = GRACE
    assert recovery.keep([], live=[instance("a", 8101)]) == []


def test_the_grace_counts_down_from_the_latest_start():
    clock = FakeClock()
    recovery = recovering(clock)
    clock.now = 10.0
    recovery.start("consul unreachable")
    clock.now = 20.0
    assert recovery.active() and recovery.ends_in() == GRACE - 10.0


class RestartedAgent:
    """Lists two workers at a high index, then, restarted, only one at a low index."""

    def __init__(self) -> None:
        self.answers = [([entry(1), entry(2)], 50), ([entry(2)], 3)]

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_after_consul_lost_its_state_the_runner_keeps_rendering_a_forgotten_instance_until_the_grace_ends(
    tmp_path: Path,
):
    clock = FakeClock()
    runner = Runner(
        TEMPLATE,
        "ner-worker",
        RestartedAgent(),
        tmp_path / "upstream.conf",
        NginxControl(check_cmd=None, reload_cmd=None),
        WAIT,
        recovery_grace=GRACE,
        clock=clock,
    )
    text, count, _ = runner.fetch(0)
    runner.apply(text, count)
    assert runner.fetch(1)[0] == upstream(p1="passing", p2="passing")
    clock.now = GRACE
    assert runner.fetch(1)[0] == upstream(p2="passing")


def test_during_recovery_an_instance_whose_check_ran_and_failed_is_let_go():
    dead = Instance(
        node="n1", id="a", name="ner-worker", address="127.0.0.1", port=8101, status="critical", failed_check=True
    )
    kept = recovering(FakeClock()).keep([dead], live=[instance("a", 8101)])
    assert ids(kept) == {"a": "critical"}  # Consul's word, which the template's passing filter drops


def test_an_instance_not_listed_healthy_for_the_grace_is_let_go_however_often_consul_restarts():
    clock = FakeClock()
    recovery = recovering(clock)
    live = [instance("dead", 8101), instance("b", 8103)]
    recovery.keep([instance("dead", 8101), instance("b", 8103)], live=live)  # both seen healthy
    for _ in range(4):  # Consul restarts every 5 s, and the dead worker never registers again
        clock.now += 5.0
        recovery.start("consul lost its state")
        kept = recovery.keep([instance("b", 8103)], live=live)
    assert ids(kept) == {"b": "passing"}


def test_an_outage_longer_than_the_grace_keeps_an_instance_that_registers_again_until_its_check_passes():
    clock = FakeClock()
    recovery = Recovery(GRACE, clock)
    live = [instance("a", 8101)]
    recovery.keep(live, live=live)  # seen healthy just before Consul went away
    for moment in (0.5, 4.5, 12.5, 22.5):  # the renderer's backed-off retries, all refused
        clock.now = moment
        recovery.unreachable()
    clock.now = 23.0  # Consul answers again: the worker registered again, its first check not yet run
    kept = recovery.keep([instance("a", 8101, "critical")], live=live)
    assert ids(kept) == {"a": "passing"}
