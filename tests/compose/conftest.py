"""Compose tests run only when asked (`make test-compose`): they build images and take minutes."""
from __future__ import annotations

import os

import pytest

from tests.compose import podman


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("NER_TEST_COMPOSE") != "1":
        reason = "compose tests run with `make test-compose` (NER_TEST_COMPOSE=1)"
    else:
        reason = podman.available()
    if reason:
        for item in items:
            if "tests/compose" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))
