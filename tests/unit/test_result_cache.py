"""The result cache: repeated texts skip the model, answers stay exact, counts reach /metrics."""

from __future__ import annotations

from falcon import testing

from tests.unit.fake_backend import FakeBackend, QueueRecorder
from worker.app import create_app
from worker.backends.cache import CachedBackend, LruCache, RedisResults
from worker.config import WorkerConfig
from worker.entities import Entity


def test_lru_forgets_the_least_recently_used_first():
    cache = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_repeated_texts_reach_the_model_once_and_get_the_same_answer():
    fake = FakeBackend()
    cached = CachedBackend(fake, size=100)
    first = cached.predict_batch(["张三在北京", "清华大学"])
    second = cached.predict_batch(["清华大学", "张三在北京", "北京欢迎你"])
    assert fake.batches == [["张三在北京", "清华大学"], ["北京欢迎你"]]
    assert second[:2] == [first[1], first[0]]
    assert second[2] == [Entity("LOC", 0, 2, "北京")]


class QueueingBackend(FakeBackend):
    """A model with its own admission queue (as the onnx backend's batcher)."""

    queues_requests = True

    def __init__(self) -> None:
        super().__init__()
        self.queue_observer: object = None

    def set_queue_observer(self, observer) -> None:
        self.queue_observer = observer


def test_the_wrapped_backends_own_queue_still_admits_and_reports_through_the_cache():
    inner = QueueingBackend()
    cached = CachedBackend(inner, size=10)
    recorder = QueueRecorder()
    cached.set_queue_observer(recorder)
    assert cached.queues_requests is True and inner.queue_observer is recorder
    assert CachedBackend(FakeBackend(), size=10).queues_requests is False


def test_hits_and_misses_are_counted_per_layer():
    counts: list[tuple[str, str, int]] = []
    cached = CachedBackend(FakeBackend(), size=100)
    cached.set_cache_observer(lambda *args: counts.append(args))
    cached.predict_batch(["北京", "张三"])
    cached.predict_batch(["北京", "上海"])
    assert counts == [("memory", "miss", 2), ("memory", "hit", 1), ("memory", "miss", 1)]


def test_a_new_model_version_never_sees_old_answers():
    old, new = FakeBackend(), FakeBackend()
    new.version = "0.2"
    lru = CachedBackend(old, size=10)
    lru.predict_batch(["北京"])
    newer = CachedBackend(new, size=10)
    newer._memory = lru._memory  # the same memory, another model version
    newer.predict_batch(["北京"])
    assert new.batches == [["北京"]]


def test_size_zero_keeps_nothing():
    fake = FakeBackend()
    cached = CachedBackend(fake, size=0)
    cached.predict_batch(["北京"])
    cached.predict_batch(["北京"])
    assert len(fake.batches) == 2


def test_health_is_the_models_not_the_caches():
    fake = FakeBackend()
    cached = CachedBackend(fake, size=10)
    cached.probe()
    assert fake.probe_calls == 1


def test_redis_failures_read_as_misses_and_back_off():
    class DownRedis:
        calls = 0

        def mget(self, keys):
            DownRedis.calls += 1
            raise ConnectionError("down")

    results = RedisResults(DownRedis(), ttl_seconds=60)
    fake = FakeBackend()
    cached = CachedBackend(fake, size=0, redis=results)
    assert cached.predict_batch(["北京"]) == [[Entity("LOC", 0, 2, "北京")]]
    cached.predict_batch(["张三"])
    assert DownRedis.calls == 1  # backed off after the first failure
    assert len(fake.batches) == 2


def test_stored_values_that_do_not_fit_the_text_are_ignored():
    from worker.backends.cache import _decode

    assert _decode(b'[["LOC", 0, 2]]', "北京") == [Entity("LOC", 0, 2, "北京")]
    assert _decode(b'[["LOC", 0, 9]]', "北京") is None
    assert _decode(b"not json", "北京") is None


def test_cache_counts_appear_in_metrics():
    cached = CachedBackend(FakeBackend(), size=10)
    client = testing.TestClient(create_app(cached, WorkerConfig()))
    for _ in range(3):
        assert client.simulate_post("/v1/ner", json={"text": "张三在北京"}).status_code == 200
    body = client.simulate_get("/metrics").text
    assert 'ner_result_cache_lookups_total{layer="memory",result="hit"} 2.0' in body
    assert 'ner_result_cache_lookups_total{layer="memory",result="miss"} 1.0' in body
