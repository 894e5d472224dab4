"""Fixtures shared by the registrar's unit tests: one event log that the fakes write to."""

from __future__ import annotations

import pytest

from tests.unit.fake_consul import FakeConsul, FakeTime


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def consul(events: list[str]) -> FakeConsul:
    return FakeConsul(events)


@pytest.fixture
def fake_time(events: list[str]) -> FakeTime:
    return FakeTime(events)
