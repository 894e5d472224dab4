"""Prediction behind admission: the model's queue deadline, refusals counted for /health."""

from __future__ import annotations

import time

from worker.admission import AdmissionPolicy, Refused, SlotQueue
from worker.backends.base import NerBackend
from worker.entities import Entity
from worker.errors import Overloaded
from worker.metrics import Metrics
from worker.saturation import SustainedRefusals


class Predictor:
    """Runs the backend behind admission, so a busy process queues briefly and refuses (429) only when it must.

    A backend that queues requests itself (the onnx batcher: its queue is the admission
    queue, batches are taken from it) is called directly; any other waits for one of
    `max_inflight` slots in a SlotQueue. Either way a refusal is counted by reason and
    fed to the sustained-refusal tracker that /health reads.
    """

    def __init__(
        self,
        backend: NerBackend,
        metrics: Metrics | None,
        *,
        max_inflight: int,
        policy: AdmissionPolicy,
        refusals: SustainedRefusals | None = None,
    ) -> None:
        self._backend = backend
        self._metrics = metrics
        self._refusals = refusals or SustainedRefusals()
        self._slots: SlotQueue | None = None
        if not backend.queues_requests:
            self._slots = SlotQueue(max_inflight, policy)
            if metrics is not None:
                self._slots.observer = metrics
        self.model = f"{backend.name}@{backend.version}"

    def saturated(self) -> bool:
        """Refusing requests for several windows in a row (not one refusal): /health then says 429."""
        return self._refusals.saturated()

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        if self._metrics is not None:
            self._metrics.observe_texts(texts)
        # Blank texts have no entities; some tokenizers crash on them, so they never reach the model.
        todo = [i for i, text in enumerate(texts) if text.strip()]
        results: list[list[Entity]] = [[] for _ in texts]
        if not todo:
            return results
        try:
            predicted = self._admitted_predict([texts[i] for i in todo])
        except Refused as refused:
            self._refusals.record(refused=True)
            if self._metrics is not None:
                self._metrics.observe_refusal(refused.reason)
            raise Overloaded(refused.description) from None
        self._refusals.record(refused=False)
        if len(predicted) != len(todo):
            raise RuntimeError(f"backend returned {len(predicted)} results for {len(todo)} texts")
        for i, entities in zip(todo, predicted):
            results[i] = list(entities)
        return results

    def _admitted_predict(self, texts: list[str]) -> list[list[Entity]]:
        if self._slots is None:
            return self._timed_predict(texts)
        with self._slots.admitted():
            return self._timed_predict(texts)

    def _timed_predict(self, texts: list[str]) -> list[list[Entity]]:
        started = time.perf_counter()
        predicted = self._backend.predict_batch(texts)
        if self._metrics is not None:
            self._metrics.observe_inference(len(texts), time.perf_counter() - started)
        return predicted
