"""Whether a worker's refusals are sustained, so /health says "warning" for overload, not for a blip.

A 429 from /health makes Consul report the instance as warning, which changes
the gateway's weights and reloads nginx. One refusal, or one burst of them,
is not worth that; refusals that go on for several seconds are.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class SustainedRefusals:
    """Counts answered and refused requests per window; saturated while `windows` whole windows in a row refused.

    A window counts as refusing when at least one request and at least `min_ratio` of
    its requests were refused. The window still under way never counts, so a first
    refusal cannot turn health to 429 by itself, and health recovers one whole
    quiet window after the refusals stop.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 1.0,
        windows: int = 3,
        min_ratio: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0 or windows < 1 or not 0 < min_ratio <= 1:
            raise ValueError("need window_seconds > 0, windows >= 1 and 0 < min_ratio <= 1")
        self._window = window_seconds
        self._windows = windows
        self._min_ratio = min_ratio
        self._clock = clock
        self._lock = threading.Lock()
        # [window index, answered, refused], oldest first; at most windows + 1 of them.
        self._counts: deque[list[int]] = deque()

    def record(self, refused: bool) -> None:
        """One inference request's outcome: admitted (False) or refused (True)."""
        index = self._index()
        with self._lock:
            if not self._counts or self._counts[-1][0] != index:
                self._counts.append([index, 0, 0])
                while self._counts[0][0] < index - self._windows:
                    self._counts.popleft()
            self._counts[-1][2 if refused else 1] += 1

    def saturated(self) -> bool:
        """True while each of the last `windows` whole windows refused requests."""
        current = self._index()
        with self._lock:
            refusing = {
                index
                for index, answered, refused in self._counts
                if refused and refused >= self._min_ratio * (answered + refused)
            }
        return all(current - k in refusing for k in range(1, self._windows + 1))

    def _index(self) -> int:
        return int(self._clock() // self._window)
