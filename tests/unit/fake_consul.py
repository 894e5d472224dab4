"""Fakes for the registrar's unit tests: a py-consul client and a clock, both logging to one event list."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import requests


class FakeConsul:
    """The parts of py-consul's client the registrar uses, with an event log and failure switches."""

    def __init__(self, events: list[str] | None = None) -> None:
        self.events = events if events is not None else []
        self.services: dict[str, dict[str, Any]] = {}
        self.maintenance: set[str] = set()
        self.registrations: list[dict[str, Any]] = []
        self.down = False
        self.passing_polls_before_drop = 0
        self.agent = SimpleNamespace(
            services=self._services,
            self=lambda: {"Config": {"NodeName": "node-1"}},
            service=SimpleNamespace(
                register=self._register, deregister=self._deregister, maintenance=self._maintenance
            ),
        )
        self.health = SimpleNamespace(service=self._health_service)

    def _call(self, event: str) -> None:
        self.events.append(event)
        if self.down:
            raise requests.ConnectionError("connection refused")

    def _services(self) -> dict[str, Any]:
        self._call("services")
        return dict(self.services)

    def _register(self, **definition: Any) -> bool:
        self._call("register")
        self.registrations.append(definition)
        self.services[definition["service_id"]] = definition
        return True

    def _deregister(self, service_id: str) -> bool:
        self._call("deregister")
        self.maintenance.discard(service_id)
        return self.services.pop(service_id, None) is not None

    def _maintenance(self, service_id: str, enable: str, reason: str | None = None) -> bool:
        self._call(f"maintenance:{enable}")
        if service_id not in self.services:
            return False
        (self.maintenance.add if enable == "true" else self.maintenance.discard)(service_id)
        return True

    def _health_service(self, service: str, passing: bool = False) -> tuple[int, list]:
        self._call("health")
        entries = []
        for service_id, definition in self.services.items():
            in_maintenance = service_id in self.maintenance
            if in_maintenance and self.passing_polls_before_drop > 0:
                self.passing_polls_before_drop -= 1
                in_maintenance = False
            if passing and in_maintenance:
                continue
            entries.append(
                {"Service": {"ID": service_id, "Service": service}, "Node": {"Node": "node-1"}, "Checks": []}
            )
        return 1, entries


class FakeTime:
    """sleep() advances clock() and is logged, so waits are observable and instant."""

    def __init__(self, events: list[str]) -> None:
        self.now = 1000.0
        self.events = events

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.events.append(f"sleep:{seconds:g}")
        self.now += seconds
