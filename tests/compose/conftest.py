"""Compose tests run only when asked (`make test-compose`): they build images and take minutes."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.compose import podman
from tests.compose.engine import ComposeEngine, start_engine
from tests.support.optin import skip_unless_opted_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_opted_in(items, "tests/compose", "NER_TEST_COMPOSE", "test-compose", podman.available)


@pytest.fixture(scope="session")
def engine(record_figure) -> Iterator[ComposeEngine]:
    """podman's API with the images built, shared by the plain and the secured compose tests."""
    started = start_engine(record_figure)
    try:
        yield started
    finally:
        started.service.stop()
