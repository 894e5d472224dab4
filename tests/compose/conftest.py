"""Compose tests run only when asked (`make test-compose`): they build images and take minutes."""
from __future__ import annotations

import pytest

from tests.compose import podman
from tests.support.optin import skip_unless_opted_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_opted_in(items, "tests/compose", "NER_TEST_COMPOSE", "test-compose", podman.available)
