"""A deterministic stand-in for the model, and a test client built around it."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from falcon import testing

from tests.support.waiting import wait_for
from worker.app import create_app
from worker.backends.base import BackendError, NerBackend
from worker.config import WorkerConfig
from worker.entities import Entity

KNOWN = {"北京": "LOC", "张三": "PER", "清华大学": "ORG"}


class FakeBackend(NerBackend):
    """Tags every occurrence of a few fixed words; switches make it fail like a broken model."""

    name = "fake"
    version = "0.1"

    def __init__(self) -> None:
        self.fail_probe = False
        self.fail_predict = False
        self.crash_predict = False  # an unexpected bug rather than a model failure
        self.probe_calls = 0
        self.batches: list[list[str]] = []
        self.gate: threading.Event | None = None  # when set, predict waits for it
        self.entered = threading.Event()

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        self.batches.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.crash_predict:
            raise KeyError("secret internal detail")
        if self.fail_predict:
            raise BackendError("model exploded")
        return [self._tag(text) for text in texts]

    def probe(self) -> None:
        self.probe_calls += 1
        if self.fail_probe:
            raise BackendError("model not loaded")

    @staticmethod
    def _tag(text: str) -> list[Entity]:
        found = []
        for word, kind in KNOWN.items():
            start = text.find(word)
            while start != -1:
                found.append(Entity(kind, start, start + len(word), word))
                start = text.find(word, start + len(word))
        return sorted(found, key=lambda e: e.start)


def make_config(**overrides: Any) -> WorkerConfig:
    """Small limits make the limit tests cheap to write."""
    defaults = dict(
        instance_id="worker-test-1", max_text_chars=50, max_batch_texts=3, max_body_bytes=1000, max_inflight=2
    )
    defaults.update(overrides)
    return dataclasses.replace(WorkerConfig(), **defaults)


def make_client(backend: FakeBackend | None = None, **overrides: Any) -> testing.TestClient:
    return testing.TestClient(create_app(backend or FakeBackend(), make_config(**overrides)))


def refuse_until_saturated(client, timeout: float = 5.0) -> None:
    """Keep getting refused until /health reports it (a few 50 ms windows)."""

    def saturated() -> bool:
        if client.simulate_get("/health").status_code == 429:
            return True
        assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 429
        return False

    wait_for(saturated, timeout, "health reporting the sustained refusals", interval=0.005)


class QueueRecorder:
    """Keeps the queue lengths and waits an admission queue reports (a QueueObserver)."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.waits: list[float] = []

    def observe_queue_length(self, waiting: int) -> None:
        self.lengths.append(waiting)

    def observe_queue_wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def refusing_client(backend: FakeBackend) -> testing.TestClient:
    """One inference slot, refused at once when busy, and /health saturated after two 50 ms windows."""
    return make_client(
        backend,
        max_inflight=1,
        health_cache_seconds=0,
        queue_deadline_ms=0,
        saturation_window_seconds=0.05,
        saturation_windows=2,
    )
