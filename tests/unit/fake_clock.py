"""A clock the renderer's tests move by hand: time passes only when a test or a fake says so."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
