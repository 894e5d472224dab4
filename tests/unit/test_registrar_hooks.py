"""gunicorn hooks with a fake Consul: ID before fork, bound port, drain before the arbiter's handler."""

from __future__ import annotations

import os
import re
import signal
import socket
from typing import Any, Iterator

import pytest
from gunicorn.arbiter import Arbiter

from registrar import hooks
from registrar.registration import Registrar
from tests.unit.fake_consul import FakeConsul, FakeTime

REGISTRAR_ENV = (
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_TOKEN",
    "NER_REGISTER",
    "NER_SERVICE_NAME",
    "NER_ADVERTISE_ADDRESS",
    "NER_ADVERTISE_PORT",
    "NER_DRAIN_SECONDS",
    "NER_RESYNC_SECONDS",
    "NER_MODEL_NAME",
    "NER_MODEL_VERSION",
    "NER_INSTANCE_ID",
)


class FakeListener:
    def __init__(self, name: Any) -> None:
        self.name = name

    def getsockname(self) -> Any:
        return self.name


class FakeArbiter:
    """Stands in for gunicorn's Arbiter: listeners plus the two signal handlers that get wrapped."""

    def __init__(self, events: list[str], sockname: Any = ("0.0.0.0", 8123)) -> None:
        self.events = events
        self.LISTENERS = [FakeListener(sockname)]

    def handle_term(self) -> None:
        self.events.append("original:term")

    def handle_int(self) -> None:
        self.events.append("original:int")

    def dispatch(self, signame: str) -> None:
        """What Arbiter.run does with a queued signal."""
        getattr(self, "handle_%s" % signame)()


@pytest.fixture
def fake_registrar(monkeypatch, consul: FakeConsul, events: list[str]) -> None:
    """Hooks build their Registrar with the fake client and instant sleeps."""
    fake_time = FakeTime(events)

    def build(config, instance_id):
        return Registrar(config, instance_id, client=consul, sleep=fake_time.sleep, clock=fake_time.clock)

    monkeypatch.setattr(hooks, "Registrar", build)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> Iterator[None]:
    for name in REGISTRAR_ENV:
        monkeypatch.setenv(name, "")  # records the original value, so teardown restores it
        monkeypatch.delenv(name)
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
    monkeypatch.setenv("NER_RESYNC_SECONDS", "0.05")
    yield
    if hooks.state.resync is not None:
        hooks.state.resync.stop()
    hooks.state = hooks.HookState()


class TestOnStarting:
    def test_sets_the_instance_id_in_the_environment_for_forked_workers(self, fake_registrar) -> None:
        hooks.on_starting(FakeArbiter([]))
        assert re.match(r"^ner-worker-[a-z0-9-]+-[0-9a-f]{8}$", os.environ["NER_INSTANCE_ID"])
        assert hooks.state.registrar.instance_id == os.environ["NER_INSTANCE_ID"]

    def test_gives_each_start_a_new_id(self, fake_registrar) -> None:
        hooks.on_starting(FakeArbiter([]))
        first = os.environ["NER_INSTANCE_ID"]
        hooks.on_starting(FakeArbiter([]))
        assert os.environ["NER_INSTANCE_ID"] != first

    def test_sets_an_id_but_never_talks_to_consul_when_registration_is_off(
        self, monkeypatch, fake_registrar, consul: FakeConsul, events: list[str]
    ) -> None:
        monkeypatch.setenv("NER_REGISTER", "0")
        server = FakeArbiter(events)
        hooks.on_starting(server)
        hooks.when_ready(server)
        server.dispatch("term")
        hooks.on_exit(server)
        assert os.environ["NER_INSTANCE_ID"].startswith("ner-worker-")
        assert hooks.state.registrar is None
        assert events == ["original:term"]


class TestWhenReady:
    def test_registers_the_port_gunicorn_actually_bound(self, fake_registrar, consul: FakeConsul) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            server = FakeArbiter([])
            server.LISTENERS = [sock]
            hooks.on_starting(server)
            hooks.when_ready(server)
            bound = sock.getsockname()[1]
        sent = consul.registrations[-1]
        assert (sent["address"], sent["port"]) == ("127.0.0.1", bound)
        assert sent["service_id"] == os.environ["NER_INSTANCE_ID"]

    def test_advertise_port_overrides_the_bound_port(self, monkeypatch, fake_registrar, consul: FakeConsul) -> None:
        monkeypatch.setenv("NER_ADVERTISE_PORT", "18080")
        server = FakeArbiter([])
        hooks.on_starting(server)
        hooks.when_ready(server)
        assert consul.registrations[-1]["port"] == 18080

    def test_a_specific_bind_address_is_advertised_over_the_default(self, fake_registrar, consul: FakeConsul) -> None:
        server = FakeArbiter([], sockname=("10.0.0.8", 9000))
        hooks.on_starting(server)
        hooks.when_ready(server)
        assert consul.registrations[-1]["check"]["http"].startswith("http://10.0.0.8:9000/health?id=")

    def test_explicit_advertise_address_beats_the_bind_address(
        self, monkeypatch, fake_registrar, consul: FakeConsul
    ) -> None:
        monkeypatch.setenv("NER_ADVERTISE_ADDRESS", "192.0.2.4")
        server = FakeArbiter([], sockname=("10.0.0.8", 9000))
        hooks.on_starting(server)
        hooks.when_ready(server)
        assert consul.registrations[-1]["address"] == "192.0.2.4"

    def test_consul_down_at_start_does_not_stop_the_worker_and_resync_registers_later(
        self, fake_registrar, consul: FakeConsul
    ) -> None:
        consul.down = True
        server = FakeArbiter([])
        hooks.on_starting(server)
        hooks.when_ready(server)
        assert consul.services == {}
        consul.down = False
        for _ in range(200):
            if consul.services:
                break
            hooks.state.resync._stop.wait(0.01)
        assert list(consul.services) == [os.environ["NER_INSTANCE_ID"]]


class TestShutdown:
    @pytest.mark.parametrize("signame", ["term", "int"])
    def test_signal_drains_before_the_original_handler(self, signame: str, fake_registrar, events: list[str]) -> None:
        server = FakeArbiter(events)
        hooks.on_starting(server)
        hooks.when_ready(server)
        events.clear()
        server.dispatch(signame)
        assert events[0] == "maintenance:true"
        assert events.index("health") < events.index("sleep:3") < events.index(f"original:{signame}")
        assert events[-1] == f"original:{signame}"

    def test_drains_only_once_when_term_then_int_arrive(self, fake_registrar, events: list[str]) -> None:
        server = FakeArbiter(events)
        hooks.on_starting(server)
        hooks.when_ready(server)
        server.dispatch("term")
        server.dispatch("int")
        assert events.count("maintenance:true") == 1
        assert events[-2:] == ["original:term", "original:int"]

    def test_on_exit_stops_resync_then_deregisters(self, fake_registrar, consul: FakeConsul, events: list[str]) -> None:
        server = FakeArbiter(events)
        hooks.on_starting(server)
        hooks.when_ready(server)
        resync = hooks.state.resync
        server.dispatch("term")
        hooks.on_exit(server)
        assert not resync.alive
        assert events[-1] == "deregister"
        assert consul.services == {}

    def test_drain_failure_still_runs_the_original_handler(
        self, fake_registrar, consul: FakeConsul, events: list[str]
    ) -> None:
        server = FakeArbiter(events)
        hooks.on_starting(server)
        hooks.when_ready(server)
        hooks.state.registrar.drain = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
        server.dispatch("term")
        assert events[-1] == "original:term"

    def test_wrapper_is_what_gunicorns_arbiter_dispatches(self, fake_registrar, events: list[str]) -> None:
        """On the real Arbiter class, the instance attribute shadows the class's handle_term."""
        arbiter = Arbiter.__new__(Arbiter)
        arbiter.LISTENERS = [FakeListener(("0.0.0.0", 8123))]
        hooks.on_starting(arbiter)
        hooks.when_ready(arbiter)
        handler = getattr(arbiter, "handle_%s" % arbiter.SIG_NAMES[signal.SIGTERM])
        assert handler is not Arbiter.handle_term
        events.clear()
        with pytest.raises(StopIteration):
            handler()
        assert events[0] == "maintenance:true"
