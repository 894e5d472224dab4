"""Multi-host tests run only when asked (`make test-multihost`): they need root and take minutes."""
from __future__ import annotations

import os

import pytest

from tests.multihost import netns


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip unless NER_TEST_MULTIHOST=1, and say why when the machine cannot run them."""
    if os.environ.get("NER_TEST_MULTIHOST") != "1":
        reason = "multi-host tests run with `make test-multihost` (NER_TEST_MULTIHOST=1)"
    else:
        reason = netns.available()
    if reason:
        for item in items:
            if "tests/multihost" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))
