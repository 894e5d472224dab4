"""Compose tests run only when asked (`make test-compose`): they build images and take minutes."""
from __future__ import annotations

import json
import os
from typing import Callable

import pytest

from tests.compose import podman
from tests.support.processes import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("NER_TEST_COMPOSE") != "1":
        reason = "compose tests run with `make test-compose` (NER_TEST_COMPOSE=1)"
    else:
        reason = podman.available()
    if reason:
        for item in items:
            if "tests/compose" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def record_figure() -> Callable[[str, float], None]:
    """A measured figure into test-artifacts/figures.jsonl."""
    ARTIFACTS.mkdir(exist_ok=True)

    def record(name: str, value: float) -> None:
        with open(ARTIFACTS / "figures.jsonl", "a") as out:
            out.write(json.dumps({"figure": name, "value": round(value, 3)}) + "\n")
        print(f"figure {name} = {value:.3f}")

    return record
