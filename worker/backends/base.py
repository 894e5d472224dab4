"""What the HTTP layer needs from any NER model, whatever library runs it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from worker.entities import Entity


class BackendError(Exception):
    """The model itself failed (not the input); the service answers 503, not 500."""


@runtime_checkable
class NerBackend(Protocol):
    """A loaded NER model: one list of entities per input text, in input order."""

    name: str
    version: str

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        """Entities for each text, offsets into that text; never raises for odd input."""
        ...

    def probe(self) -> None:
        """Raises BackendError unless the model can predict right now (used by /health)."""
        ...
