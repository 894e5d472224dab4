"""Answer repeated texts from memory (and optionally a shared Redis) instead of the model.

News traffic repeats itself: the same headline is sent by many clients. A
result is a pure function of (model, text), so results are keyed by the
model's checksum-derived version and the text; a new model never sees an
old model's answers. Redis is best effort: when it fails, requests go to the
model and Redis is left alone for a while.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from worker.admission import QueueObserver
from worker.backends.base import CacheObserver, NerBackend
from worker.entities import Entity

logger = logging.getLogger(__name__)

MAX_CACHED_CHARS = 4096  # longer texts are rarely repeated and would crowd the memory cache
REDIS_BACKOFF_SECONDS = 5.0


def _no_observer(layer: str, result: str, count: int) -> None:
    return None


class LruCache:
    """A thread-safe bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class RedisResults:
    """Entities per (model version, text) in Redis; every failure reads as a miss."""

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int) -> RedisResults:
        import redis

        # Short timeouts: a slow cache must never cost more than the model would.
        return cls(redis.Redis.from_url(url, socket_timeout=0.1, socket_connect_timeout=0.1), ttl_seconds)

    @staticmethod
    def key(version: str, text: str) -> str:
        return f"ner:v1:{version}:{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}"

    def get_many(self, version: str, texts: list[str]) -> list[list[Entity] | None]:
        if not texts or time.monotonic() < self._down_until:
            return [None] * len(texts)
        try:
            raw = self._client.mget([self.key(version, text) for text in texts])
        except Exception as error:  # noqa: BLE001 - any Redis failure: serve from the model
            self._back_off(error)
            return [None] * len(texts)
        return [_decode(value, text) for value, text in zip(raw, texts)]

    def put_many(self, version: str, results: list[tuple[str, list[Entity]]]) -> None:
        if not results or time.monotonic() < self._down_until:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for text, entities in results:
                pipe.set(self.key(version, text), _encode(entities), ex=self._ttl)
            pipe.execute()
        except Exception as error:  # noqa: BLE001
            self._back_off(error)

    def _back_off(self, error: Exception) -> None:
        logger.warning("redis result cache unavailable for %.0fs: %s", REDIS_BACKOFF_SECONDS, error)
        self._down_until = time.monotonic() + REDIS_BACKOFF_SECONDS


def _encode(entities: list[Entity]) -> str:
    return json.dumps([[e.type, e.start, e.end] for e in entities])


def _decode(value: bytes | None, text: str) -> list[Entity] | None:
    """Entities from a stored value, or None when it is missing or does not fit the text."""
    if value is None:
        return None
    try:
        entities = [Entity(kind, start, end, text[start:end]) for kind, start, end in json.loads(value)]
    except (ValueError, TypeError):
        return None
    if any(not 0 <= e.start < e.end <= len(text) for e in entities):
        return None
    return entities


class CachedBackend(NerBackend):
    """A NerBackend that asks the memory cache, then Redis, then the wrapped backend."""

    def __init__(self, inner: NerBackend, size: int, redis: RedisResults | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self._memory = LruCache(size)
        self._redis = redis
        self._observe: CacheObserver = _no_observer

    @property
    def queues_requests(self) -> bool:
        """The wrapped backend's queue, if it has one, admits what the caches do not answer."""
        return self.inner.queues_requests

    def set_queue_observer(self, observer: QueueObserver) -> None:
        self.inner.set_queue_observer(observer)

    def set_cache_observer(self, observe: CacheObserver) -> None:
        """Where hit and miss counts go (the metrics)."""
        self._observe = observe

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        """Entities for each text; only texts no cache knows reach the model."""
        results: list[list[Entity] | None] = [None] * len(texts)
        todo = []
        for index, text in enumerate(texts):
            cached = self._memory.get((self.version, text)) if len(text) <= MAX_CACHED_CHARS else None
            if cached is None:
                todo.append(index)
            else:
                results[index] = list(cached)
        if self._memory.size > 0:
            self._count("memory", len(texts) - len(todo), len(todo))
        if todo and self._redis is not None:
            found = self._redis.get_many(self.version, [texts[i] for i in todo])
            hits = [(i, entities) for i, entities in zip(todo, found) if entities is not None]
            for index, entities in hits:
                results[index] = entities
                self._remember(texts[index], entities)
            self._count("redis", len(hits), len(todo) - len(hits))
            todo = [i for i, entities in zip(todo, found) if entities is None]
        if todo:
            predicted = self.inner.predict_batch([texts[i] for i in todo])
            for index, entities in zip(todo, predicted):
                results[index] = list(entities)
                self._remember(texts[index], entities)
            if self._redis is not None:
                self._redis.put_many(self.version, [(texts[i], results[i]) for i in todo])  # type: ignore[misc]
        return results  # type: ignore[return-value]

    def probe(self) -> None:
        """Health is the model's, never the cache's."""
        self.inner.probe()

    def _remember(self, text: str, entities: list[Entity]) -> None:
        if len(text) <= MAX_CACHED_CHARS:
            self._memory.put((self.version, text), tuple(entities))

    def _count(self, layer: str, hits: int, misses: int) -> None:
        if hits:
            self._observe(layer, "hit", hits)
        if misses:
            self._observe(layer, "miss", misses)

    def __getattr__(self, name: str) -> Any:
        # Backend-specific extras (close()) stay reachable through the wrapper.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
