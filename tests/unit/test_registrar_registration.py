"""Registrar against a fake Consul client: payload, drain, deregister, re-registration, resync."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from registrar.config import RegistrarConfig
from registrar.registration import Registrar
from registrar.resync import Resync
from tests.unit.fake_consul import FakeConsul, FakeTime

CONFIG = RegistrarConfig(
    consul_host="127.0.0.1",
    advertise_address="10.0.0.5",
    check_interval="1s",
    check_timeout="2s",
    deregister_after="1m",
    drain_seconds=3.0,
    resync_seconds=2.0,
    model_name="raner-tiny",
    model_version="0123456789ab",
    hostname="box1",
)


@pytest.fixture
def registrar(consul: FakeConsul, fake_time: FakeTime) -> Registrar:
    return Registrar(
        CONFIG, "ner-worker-box1-0000abcd", client=consul, sleep=fake_time.sleep, clock=fake_time.clock, pid=4242
    )


class TestRegistrationPayload:
    def test_registers_name_id_address_and_port(self, registrar: Registrar, consul: FakeConsul) -> None:
        assert registrar.register(8123) is True
        sent = consul.registrations[-1]
        assert (sent["name"], sent["service_id"]) == ("ner-worker", "ner-worker-box1-0000abcd")
        assert (sent["address"], sent["port"]) == ("10.0.0.5", 8123)

    def test_check_is_http_health_on_the_advertised_endpoint(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        check = consul.registrations[-1]["check"]
        assert check["http"] == "http://10.0.0.5:8123/health?id=ner-worker-box1-0000abcd"
        assert (check["interval"], check["timeout"]) == ("1s", "2s")
        assert check["DeregisterCriticalServiceAfter"] == "1m"
        assert check["FailuresBeforeCritical"] == 2

    def test_check_names_the_instance_so_a_successor_on_its_address_cannot_pass_it(self, consul: FakeConsul) -> None:
        Registrar(CONFIG, "ner-worker/odd id", client=consul).register(8000)
        assert consul.registrations[-1]["check"]["http"].endswith("/health?id=ner-worker%2Fodd%20id")

    def test_tags_and_meta_carry_model_version_host_and_pid(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        sent = consul.registrations[-1]
        assert sent["tags"] == ["model=raner-tiny", "version=0123456789ab"]
        assert sent["meta"] == {
            "model": "raner-tiny",
            "model_version": "0123456789ab",
            "hostname": "box1",
            "pid": "4242",
        }

    def test_empty_model_version_is_left_out_not_sent_empty(self, consul: FakeConsul) -> None:
        registrar = Registrar(replace(CONFIG, model_version=""), "id-1", client=consul, pid=1)
        registrar.register(8000)
        sent = consul.registrations[-1]
        assert sent["tags"] == ["model=raner-tiny"]
        assert "model_version" not in sent["meta"]

    def test_address_given_at_registration_overrides_the_default(
        self, registrar: Registrar, consul: FakeConsul
    ) -> None:
        registrar.register(8123, address="10.0.0.99")
        assert consul.registrations[-1]["check"]["http"].startswith("http://10.0.0.99:8123/health?")

    def test_ipv6_advertise_address_is_bracketed_in_the_check_url(self, consul: FakeConsul) -> None:
        Registrar(replace(CONFIG, advertise_address="fd00::7"), "id-6", client=consul).register(8000)
        assert consul.registrations[-1]["check"]["http"] == "http://[fd00::7]:8000/health?id=id-6"

    def test_is_skipped_without_an_advertise_address(self, consul: FakeConsul, monkeypatch) -> None:
        monkeypatch.setattr("registrar.registration.default_advertise_address", lambda h, p: None)
        registrar = Registrar(replace(CONFIG, consul_host="consul", advertise_address=None), "id", client=consul)
        assert registrar.register(8000) is False
        assert consul.registrations == []

    def test_failure_when_consul_is_down_is_reported_not_raised(self, registrar: Registrar, consul: FakeConsul) -> None:
        consul.down = True
        assert registrar.register(8123) is False
        assert registrar.port == 8123


class TestEnsureRegistered:
    def test_does_nothing_while_the_agent_lists_the_instance(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        assert registrar.ensure_registered() is True
        assert len(consul.registrations) == 1

    def test_registers_again_when_the_agent_forgot_the_instance(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        consul.services.clear()
        assert registrar.ensure_registered() is True
        assert len(consul.registrations) == 2
        assert consul.registrations[-1] == consul.registrations[0]

    def test_completes_a_registration_that_failed_at_start(self, registrar: Registrar, consul: FakeConsul) -> None:
        consul.down = True
        registrar.register(8123)
        consul.down = False
        assert registrar.ensure_registered() is True
        assert "ner-worker-box1-0000abcd" in consul.services

    def test_reports_false_while_the_agent_is_down(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        consul.down = True
        assert registrar.ensure_registered() is False

    def test_never_registers_before_register_was_called(self, registrar: Registrar, consul: FakeConsul) -> None:
        assert registrar.ensure_registered() is False
        assert consul.events == []

    def test_never_brings_back_a_draining_instance(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        registrar.drain(in_flight_wait=0)
        consul.services.clear()
        assert registrar.ensure_registered() is False
        assert len(consul.registrations) == 1

    def test_never_brings_back_a_deregistered_instance(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        registrar.deregister()
        assert registrar.ensure_registered() is False
        assert consul.services == {}


class TestDrain:
    def test_sets_maintenance_then_waits_for_consul_then_the_grace(
        self, registrar: Registrar, consul: FakeConsul, events: list[str]
    ) -> None:
        registrar.register(8123)
        consul.passing_polls_before_drop = 2
        events.clear()
        dropped_after = registrar.drain()
        assert events == ["maintenance:true", "health", "sleep:0.1", "health", "sleep:0.1", "health", "sleep:3"]
        assert dropped_after == pytest.approx(0.2)

    def test_grace_can_be_given_per_call(self, registrar: Registrar, events: list[str]) -> None:
        registrar.register(8123)
        registrar.drain(in_flight_wait=0.5)
        assert events[-1] == "sleep:0.5"

    def test_still_waits_the_grace_when_consul_is_down(
        self, registrar: Registrar, consul: FakeConsul, events: list[str]
    ) -> None:
        registrar.register(8123)
        consul.down = True
        assert registrar.drain() is None
        assert events[-1] == "sleep:3"

    def test_gives_up_confirming_after_a_bounded_time(
        self, registrar: Registrar, consul: FakeConsul, fake_time: FakeTime
    ) -> None:
        registrar.register(8123)
        consul.passing_polls_before_drop = 10_000
        start = fake_time.now
        assert registrar.drain() is None
        assert fake_time.now - start <= 3.0 + 3.0 + 0.2

    def test_is_skipped_for_an_instance_never_registered(self, registrar: Registrar, events: list[str]) -> None:
        assert registrar.drain() is None
        assert events == []


class TestDeregister:
    def test_removes_the_instance(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        assert registrar.deregister() is True
        assert consul.services == {}

    def test_failure_is_reported_not_raised(self, registrar: Registrar, consul: FakeConsul) -> None:
        registrar.register(8123)
        consul.down = True
        assert registrar.deregister() is False


class TestResync:
    def test_calls_ensure_every_interval_until_stopped(self) -> None:
        calls = threading.Semaphore(0)
        resync = Resync(calls.release, interval=0.01).start()
        for _ in range(3):
            assert calls.acquire(timeout=2)
        resync.stop()
        assert not resync.alive

    def test_survives_exceptions_and_keeps_going(self) -> None:
        seen: list[int] = []

        def flaky() -> None:
            seen.append(1)
            if len(seen) < 4:
                raise RuntimeError("client bug")

        resync = Resync(flaky, interval=0.01).start()
        deadline = time.monotonic() + 2
        while len(seen) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        resync.stop()
        assert len(seen) >= 6
        assert resync.failures == 3

    def test_re_registers_through_an_agent_outage(self, consul: FakeConsul) -> None:
        registrar = Registrar(replace(CONFIG, resync_seconds=0.01), "id-r", client=consul)
        registrar.register(8123)
        resync = registrar.start_resync()
        try:
            consul.down = True
            consul.services.clear()
            time.sleep(0.05)
            consul.down = False
            deadline = time.monotonic() + 2
            while "id-r" not in consul.services and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            resync.stop()
        assert "id-r" in consul.services
        assert resync.alive is False
