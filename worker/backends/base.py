"""What the HTTP layer needs from any NER model, whatever library runs it."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from worker.admission import QueueObserver
from worker.entities import Entity

# A news sentence with a person, places and organisations: every backend's health probe tags it.
PROBE_TEXT = "新华社北京电，国务院总理李强在人民大会堂会见了联合国秘书长。"

# (layer, result, count): layer "memory" or "redis", result "hit" or "miss".
CacheObserver = Callable[[str, str, int], None]


class BackendError(Exception):
    """The model itself failed (not the input); the service answers 503, not 500."""


@runtime_checkable
class NerBackend(Protocol):
    """A loaded NER model: one list of entities per input text, in input order.

    Backends subclass it for the defaults of the optional parts (no own queue, no cache).
    """

    name: str
    version: str

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        """Entities for each text, offsets into that text; never raises for odd input."""
        ...

    def probe(self) -> None:
        """Raises BackendError unless the model can predict right now (used by /health)."""
        ...

    @property
    def queues_requests(self) -> bool:
        """Whether requests wait in the backend's own admission queue; if not, the HTTP layer admits them."""
        return False

    def set_queue_observer(self, observer: QueueObserver) -> None:
        """Where the backend's own admission queue reports its length and waits (the metrics)."""
        return None

    def set_cache_observer(self, observe: CacheObserver) -> None:
        """Where a result cache in front of the model reports hits and misses (the metrics)."""
        return None
