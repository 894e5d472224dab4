"""Suites that run only when asked for (`make test-compose`, `make test-multihost`): slow, and root-only."""

from __future__ import annotations

import os
from typing import Callable

import pytest


def skip_unless_opted_in(
    items: list[pytest.Item], folder: str, variable: str, target: str, unavailable: Callable[[], str | None]
) -> None:
    """Skip the folder's tests unless variable=1, and say why when the machine cannot run them."""
    if os.environ.get(variable) != "1":
        reason = f"these tests run with `make {target}` ({variable}=1)"
    else:
        reason = unavailable()
    if reason:
        for item in items:
            if folder in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))
