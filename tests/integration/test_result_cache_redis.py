"""The shared result cache on a real redis-server: one worker's answer serves another; an outage costs nothing."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.support.processes import free_port
from tests.support.waiting import wait_for
from tests.unit.fake_backend import FakeBackend
from worker.backends.cache import CachedBackend, RedisResults
from worker.entities import Entity

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"
)


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    log = open(tmp_path / "redis.log", "wb")
    server = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)

    def answers() -> bool:
        assert server.poll() is None, f"redis-server exited:\n{(tmp_path / 'redis.log').read_text()}"
        return client.ping()

    try:
        wait_for(answers, 10, "redis-server to answer PING", on_timeout=(tmp_path / "redis.log").read_text)
    except BaseException:
        server.kill()
        raise
    yield url, server
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_one_workers_answer_serves_another_worker(redis_url):
    url, _ = redis_url
    first_model, second_model = FakeBackend(), FakeBackend()
    counts: list[tuple[str, str, int]] = []
    first = CachedBackend(first_model, size=10, redis=RedisResults.from_url(url, ttl_seconds=60))
    second = CachedBackend(second_model, size=10, redis=RedisResults.from_url(url, ttl_seconds=60))
    second.set_cache_observer(lambda *args: counts.append(args))
    answer = first.predict_batch(["张三在北京"])
    assert (
        second.predict_batch(["张三在北京"]) == answer == [[Entity("PER", 0, 2, "张三"), Entity("LOC", 3, 5, "北京")]]
    )
    assert second_model.batches == []
    assert counts == [("memory", "miss", 1), ("redis", "hit", 1)]


def test_entries_expire_and_are_keyed_by_model_version(redis_url):
    import redis

    url, _ = redis_url
    CachedBackend(FakeBackend(), size=0, redis=RedisResults.from_url(url, ttl_seconds=60)).predict_batch(["北京"])
    client = redis.Redis.from_url(url)
    [key] = client.keys("ner:*")
    assert key.decode().startswith("ner:v1:0.1:")
    assert 0 < client.ttl(key) <= 60


def test_a_redis_outage_never_fails_a_request(redis_url):
    url, server = redis_url
    model = FakeBackend()
    cached = CachedBackend(model, size=0, redis=RedisResults.from_url(url, ttl_seconds=60))
    cached.predict_batch(["北京"])
    server.kill()
    server.wait()
    started = time.monotonic()
    assert cached.predict_batch(["北京", "张三"]) == [[Entity("LOC", 0, 2, "北京")], [Entity("PER", 0, 2, "张三")]]
    assert time.monotonic() - started < 1.0
    assert model.batches[-1] == ["北京", "张三"]
