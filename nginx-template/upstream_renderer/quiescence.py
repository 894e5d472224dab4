"""Quiescence, consul-template's wait=MIN:MAX: apply after MIN without another change, MAX at most."""

from __future__ import annotations

import time
from typing import Callable

SETTLED_WITHIN = 0.001  # seconds left that count as none


class Quiescence:
    """The quiet window of the change being settled (consul-template's manager/runner.go quiescence)."""

    def __init__(self, wait: tuple[float, float], clock: Callable[[], float] = time.monotonic):
        self.wait_min, self.wait_max = wait
        self.clock = clock
        self.quiet_until = self.deadline = float("-inf")

    def start(self) -> None:
        """A change arrived: MIN of quiet from now, and MAX at most."""
        now = self.clock()
        self.quiet_until, self.deadline = now + self.wait_min, now + self.wait_max

    def tick(self) -> None:
        """Another change: MIN of quiet again, still within MAX of the first."""
        self.quiet_until = self.clock() + self.wait_min

    def remaining(self) -> float:
        """Seconds to wait before the change may be applied; 0 when it may be now."""
        left = min(self.quiet_until, self.deadline) - self.clock()
        return left if left > SETTLED_WITHIN else 0.0
