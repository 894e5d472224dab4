"""Multi-host tests run only when asked (`make test-multihost`): they need root and take minutes."""

from __future__ import annotations

import pytest

from tests.multihost import netns
from tests.support.optin import skip_unless_opted_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_opted_in(items, "tests/multihost", "NER_TEST_MULTIHOST", "test-multihost", netns.available)
