"""Multi-host tests run only when asked (`make test-multihost`): they need root and take minutes."""
from __future__ import annotations

import json
import os
from typing import Callable

import pytest

from tests.multihost import netns
from tests.support.processes import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"


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


@pytest.fixture(scope="session")
def record_figure() -> Callable[[str, float], None]:
    """A measured figure into test-artifacts/figures.jsonl (the same file the integration tests use)."""
    ARTIFACTS.mkdir(exist_ok=True)

    def record(name: str, value: float) -> None:
        with open(ARTIFACTS / "figures.jsonl", "a") as out:
            out.write(json.dumps({"figure": name, "value": round(value, 3)}) + "\n")
        print(f"figure {name} = {value:.3f}")

    return record
