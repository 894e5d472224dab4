"""Fixtures every test folder shares."""

from __future__ import annotations

import json
from typing import Callable

import pytest

from tests.support.processes import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def record_figure() -> Callable[[str, float], None]:
    """Keep a measured figure (seconds, counts) in test-artifacts/figures.jsonl for the docs."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "figures.jsonl"

    def record(name: str, value: float) -> None:
        with open(path, "a") as out:
            out.write(json.dumps({"figure": name, "value": round(value, 3)}) + "\n")
        print(f"figure {name} = {value:.3f}")

    return record
