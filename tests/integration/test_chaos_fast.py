"""Short chaos scenarios with bounded loops: a hung worker, keep-alive clients, load shedding.

kill -9, SIGTERM, zero workers and Consul restarts with fresh connections are in
test_cluster_discovery.py; bench/chaos.py runs the long versions with figures.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator
from unittest import mock

import pytest
import requests

from bench.loadgen import PacedLoad
from registrar.config import duration_seconds
from registrar.config import load_config as registrar_config
from scripts.localcluster import LocalCluster, Proc
from tests.integration.conftest import started_cluster
from tests.support.waiting import wait_for, wait_outcomes

TEXT = {"text": "张三在北京的清华大学工作。"}
_SERIAL = itertools.count()


def slow_batch() -> dict:
    """About a second of inference on the generated model; texts never seen before, so no cache answers."""
    n = next(_SERIAL)
    return {
        "texts": [
            f"{n}-{i}：" + "新华社北京电，国务院总理李强在人民大会堂会见了联合国秘书长古特雷斯。" * 40
            for i in range(16)
        ]
    }


DEADLINE_S = 10.0
# Slow batches held in a worker at once: as many as its inference slots when it refuses at once
# (NER_QUEUE_DEADLINE_MS=0, NER_MAX_INFLIGHT 3), so the next request is refused.
OVERLOADING_HOLDERS = 3


@pytest.fixture(scope="module")
def refusing() -> Iterator[LocalCluster]:
    """A cluster whose workers refuse at once when their slots are busy (NER_QUEUE_DEADLINE_MS=0).

    With the default queue deadline, how many requests it takes to make a worker refuse depends on
    the model's measured pace (a request predicted to wait past the deadline is refused on arrival),
    so the refusal itself is set up the deterministic way here.
    """
    with mock.patch.dict(os.environ, {"NER_QUEUE_DEADLINE_MS": "0"}):  # supervisord passes it on
        with started_cluster("ner-refusing-") as local:
            yield local


@pytest.fixture
def refusing_workers(refusing: LocalCluster) -> LocalCluster:
    refusing.up(2)
    refusing.wait_gateway_routes_to_all()
    return refusing


def in_upstream(cluster: LocalCluster, port: int) -> bool:
    text = (cluster.nginx_dir() / "upstream.conf").read_text()
    return f":{port} " in text or f":{port};" in text


def consul_status(cluster: LocalCluster, port: int) -> str | None:
    """Aggregated check status of the instance on a local port."""
    entries = requests.get(f"{cluster.config.consul_url}/v1/health/service/ner-worker", timeout=5).json()
    for entry in entries:
        if entry["Service"]["Port"] == port:
            statuses = {check["Status"] for check in entry["Checks"]}
            for status in ("critical", "warning", "passing"):
                if status in statuses:
                    return status
    return None


@contextmanager
def busy(worker: Proc, holders: int) -> Iterator[list[int]]:
    """Keep a worker's inference slots occupied with slow batches sent to it directly."""
    stop = threading.Event()
    statuses: list[int] = []

    def hold() -> None:
        while not stop.is_set():
            statuses.append(
                requests.post(f"http://127.0.0.1:{worker.port}/v1/ner", json=slow_batch(), timeout=60).status_code
            )

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(holders)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


# The renderer applies a change after at most its quiescence maximum (the renderer's --wait 0.2s:2s).
RENDER_WAIT_MAX_S = 2.0


def hung_detection_bound_s() -> float:
    """Consul needs check_failures timed-out checks, each a timeout plus an interval; then the renderer's
    quiescence window. Far below the other ways a worker leaves (deregistration after a minute)."""
    config = registrar_config({})
    cycle = duration_seconds(config.check_timeout) + duration_seconds(config.check_interval)
    return config.check_failures * cycle + RENDER_WAIT_MAX_S


def test_a_hung_worker_leaves_the_upstream_once_its_checks_time_out(two_workers, record_figure):
    victim = list(two_workers.workers().values())[-1]
    os.killpg(victim.pid, signal.SIGSTOP)
    try:
        out = wait_for(
            lambda: not in_upstream(two_workers, victim.port), 15, "hung worker out of upstream", interval=0.02
        )
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        os.killpg(victim.pid, signal.SIGCONT)
        wait_for(lambda: not victim.alive(), 10, "the hung worker to be gone")
    assert out < hung_detection_bound_s()
    record_figure("hang.to_out_of_upstream_s", out)


def test_kill_9_fails_no_request_of_a_keep_alive_client_that_resends_on_a_reset_connection(two_workers):
    victim = list(two_workers.workers().values())[-1]
    load = PacedLoad(
        f"{two_workers.config.gateway_url}/v1/ner", rate=40, threads=2, kinds=("retrying",), max_seconds=20
    ).start()
    wait_outcomes(load.records, 40)
    os.killpg(victim.pid, signal.SIGKILL)
    wait_for(lambda: not in_upstream(two_workers, victim.port), 5, "killed worker out of upstream")
    wait_outcomes(load.records, 40)
    load.stop()
    failed = [r for r in load.records if not r.ok]
    assert failed == []


def test_a_worker_that_refuses_inference_reports_429_on_health_and_turns_warning(refusing_workers):
    worker = list(refusing_workers.workers().values())[0]
    url = f"http://127.0.0.1:{worker.port}"
    with busy(worker, holders=OVERLOADING_HOLDERS):
        wait_for(
            lambda: requests.post(f"{url}/v1/ner", json=TEXT, timeout=5).status_code == 429,
            10,
            "a 429 from the busy worker",
            interval=0.05,
        )
        # Health turns 429 only once refusals are sustained (several whole seconds of them).
        wait_for(
            lambda: (
                requests.post(f"{url}/v1/ner", json=TEXT, timeout=5).status_code == 429
                and requests.get(f"{url}/health", timeout=5).status_code == 429
            ),
            15,
            "health reporting the sustained refusals",
            interval=0.05,
        )
        health = requests.get(f"{url}/health", timeout=5)
        wait_for(lambda: consul_status(refusing_workers, worker.port) == "warning", 5, "Consul warning")
        wait_for(
            lambda: "weight=1 " in (refusing_workers.nginx_dir() / "upstream.conf").read_text(),
            5,
            "lower weight in the upstream",
        )
    assert health.status_code == 429
    assert set(health.json()) == {"title", "description"}
    wait_for(lambda: consul_status(refusing_workers, worker.port) == "passing", 10, "passing again")


def test_the_gateway_retries_a_429_on_another_worker_before_the_client_sees_it(refusing_workers):
    worker = list(refusing_workers.workers().values())[0]
    log = refusing_workers.nginx_dir() / "access.log"
    start = log.stat().st_size
    with busy(worker, holders=OVERLOADING_HOLDERS):
        wait_for(
            lambda: requests.post(f"http://127.0.0.1:{worker.port}/v1/ner", json=TEXT, timeout=5).status_code == 429,
            10,
            "the worker to be full",
        )
        statuses = [
            requests.post(f"{refusing_workers.config.gateway_url}/v1/ner", json=TEXT, timeout=10).status_code
            for _ in range(20)
        ]
    with open(log, "rb") as out:
        out.seek(start)
        upstream_statuses = [json.loads(line)["upstream_status"] for line in out.read().splitlines()]
    assert statuses == [200] * 20
    assert any(s.startswith("429, 200") for s in upstream_statuses), upstream_statuses


def test_under_overload_every_request_gets_200_429_or_503_within_the_deadline(two_workers):
    url = f"{two_workers.config.gateway_url}/v1/ner"

    def one(_: int) -> tuple[int | str, float]:
        started = time.monotonic()
        try:
            status: int | str = requests.post(url, json=slow_batch(), timeout=DEADLINE_S).status_code
        except requests.RequestException as error:
            status = type(error).__name__
        return status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(one, range(48)))
    statuses = {status for status, _ in outcomes}
    assert statuses <= {200, 429, 503}, outcomes
    assert 429 in statuses or 503 in statuses  # it really was overloaded
    assert max(seconds for _, seconds in outcomes) < DEADLINE_S
