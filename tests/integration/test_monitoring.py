"""Prometheus against a real cluster: workers found through Consul, alerts that fire and resolve.

The cluster runs with 1 s scrape, evaluation and discovery intervals (configuration only:
NER_PROMETHEUS_*), so what is measured here is the machinery, not the production defaults.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterator
from unittest import mock

import pytest
import requests

from scripts.localcluster import LocalCluster
from tests.integration.conftest import started_cluster
from tests.support.waiting import wait_for

FAST = {
    "NER_PROMETHEUS_SCRAPE_INTERVAL": "1s",
    "NER_PROMETHEUS_EVALUATION_INTERVAL": "1s",
    "NER_PROMETHEUS_SD_REFRESH": "1s",
}
NO_HEALTHY_FOR_SECONDS = 60  # `for:` of NerNoHealthyWorker in scripts/monitoring/rules/workers.yml
# Target file written on a change (blocking query), Prometheus' discovery updates at most every 5 s,
# then a 1 s scrape: what "within its discovery refresh" allows, with room for a busy machine.
DISCOVERY_SECONDS = 15
TEXT = "张三在北京工作。"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with mock.patch.dict(os.environ, {**FAST, "NER_MONITOR": "1"}):
        with started_cluster("ner-monitoring-", workers=2) as local:
            yield local


def api(cluster: LocalCluster, path: str, **params) -> dict:
    response = requests.get(f"{cluster.config.prometheus_url}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def worker_targets(cluster: LocalCluster) -> dict[str, str]:
    """instance_id -> health ("up", "down", "unknown") of every ner-worker target Prometheus has."""
    return {
        target["labels"]["instance_id"]: target["health"]
        for target in api(cluster, "targets", state="active")["activeTargets"]
        if target["labels"].get("job") == "ner-worker"
    }


def up_ids(cluster: LocalCluster) -> set[str]:
    return {instance for instance, health in worker_targets(cluster).items() if health == "up"}


def value(cluster: LocalCluster, expr: str) -> float | None:
    result = api(cluster, "query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


def alert_state(cluster: LocalCluster, name: str) -> str | None:
    """firing, pending, or None when the alert is not active."""
    states = [alert["state"] for alert in api(cluster, "alerts")["alerts"] if alert["labels"]["alertname"] == name]
    return "firing" if "firing" in states else (states[0] if states else None)


def passing_ids(cluster: LocalCluster) -> set[str]:
    return {service["ID"] for service in cluster.passing()}


class InBackground:
    """A cluster operation that runs while the test watches Consul and Prometheus."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(action,), daemon=True)
        self.thread.start()

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - re-raised by finish()
            self.errors.append(error)

    def finish(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the cluster operation did not finish"
        if self.errors:
            raise self.errors[0]


def first_moment(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """The monotonic time at which condition first held."""
    wait_for(condition, timeout, what, interval=0.1)
    return time.monotonic()


def test_prometheus_lists_every_passing_worker_as_an_up_target(cluster):
    wanted = passing_ids(cluster)
    assert len(wanted) == 2
    wait_for(lambda: up_ids(cluster) == wanted, DISCOVERY_SECONDS, "both workers as up targets")
    assert set(worker_targets(cluster)) == wanted


def test_a_third_worker_appears_as_a_target_within_the_discovery_refresh(cluster, record_figure):
    before = passing_ids(cluster)
    scaling = InBackground(lambda: cluster.scale(3))
    passing_at = first_moment(lambda: len(passing_ids(cluster) - before) == 1, 90, "a third worker passing")
    (new,) = passing_ids(cluster) - before
    up_at = first_moment(lambda: new in up_ids(cluster), DISCOVERY_SECONDS, f"{new} as an up target")
    scaling.finish(120)
    record_figure("monitoring.discovery_join_s", up_at - passing_at)
    assert up_ids(cluster) == passing_ids(cluster)


def test_a_removed_worker_leaves_the_targets(cluster, record_figure):
    before = passing_ids(cluster)
    assert len(before) == 3
    scaling = InBackground(lambda: cluster.scale(2))
    left_consul_at = first_moment(lambda: len(passing_ids(cluster)) == 2, 90, "one worker to leave Consul")
    (gone,) = before - passing_ids(cluster)
    left_at = first_moment(lambda: gone not in worker_targets(cluster), DISCOVERY_SECONDS, f"{gone} to leave")
    scaling.finish(120)
    record_figure("monitoring.discovery_leave_s", left_at - left_consul_at)
    assert set(worker_targets(cluster)) == passing_ids(cluster)


def burst(cluster: LocalCluster, count: int, seconds: float) -> list[int]:
    """count requests through the gateway over about `seconds` (bounded in count and time)."""
    statuses, deadline = [], time.monotonic() + seconds * 3
    with requests.Session() as session:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            statuses.append(
                session.post(f"{cluster.config.gateway_url}/v1/ner", json={"text": TEXT}, timeout=5).status_code
            )
            time.sleep(seconds / count)
    return statuses


def test_a_burst_of_5xx_at_the_gateway_moves_availability_and_fires_the_fast_burn(cluster, record_figure):
    # The cluster's own start (and the tests before) may have cost some 503s: well-served traffic
    # first, until the five-minute ratio is above 99 % and no fast burn is active, so that the burst
    # below is what fires it (the fast burn needs over 1.44 % errors).
    wait_for(
        lambda: set(burst(cluster, 300, 3)) == {200}
        and (value(cluster, "gateway:http_availability:ratio_rate5m") or 0) > 0.99
        and alert_state(cluster, "GatewayErrorBudgetFastBurn") is None,
        120,
        "availability above 99 % and no fast burn before the burst",
        interval=1.0,
    )
    before = value(cluster, "gateway:http_availability:ratio_rate5m")
    cluster.scale(0)  # no healthy worker: the gateway's own fast JSON 503, what clients really get then
    try:
        started = time.monotonic()
        assert set(burst(cluster, 60, 3)) == {503}
        fired_at = first_moment(
            lambda: alert_state(cluster, "GatewayErrorBudgetFastBurn") == "firing",
            DISCOVERY_SECONDS,
            "GatewayErrorBudgetFastBurn to fire",
        )
        record_figure("monitoring.fast_burn_fires_after_burst_s", fired_at - started)
        availability = value(cluster, "gateway:http_availability:ratio_rate5m")
        assert availability is not None and availability < min(before, 0.99)  # moved, and under the objective
    finally:
        cluster.scale(2)


def test_no_healthy_worker_fires_its_alert_within_its_for_window_and_resolves_on_scaling_back(cluster, record_figure):
    wait_for(
        lambda: alert_state(cluster, "NerNoHealthyWorker") is None,
        DISCOVERY_SECONDS,
        "no zero-healthy alert while workers run",
    )
    cluster.scale(0)
    zero_at = time.monotonic()
    fired_at = first_moment(
        lambda: alert_state(cluster, "NerNoHealthyWorker") == "firing",
        NO_HEALTHY_FOR_SECONDS + DISCOVERY_SECONDS + 10,
        "NerNoHealthyWorker to fire",
    )
    assert value(cluster, "ner:worker_instances:healthy") == 0
    record_figure("monitoring.no_healthy_alert_fires_s", fired_at - zero_at)
    assert fired_at - zero_at >= NO_HEALTHY_FOR_SECONDS - 2  # it waits out its `for:` window
    cluster.scale(2)
    back_at = time.monotonic()
    resolved_at = first_moment(
        lambda: alert_state(cluster, "NerNoHealthyWorker") is None, DISCOVERY_SECONDS, "NerNoHealthyWorker to resolve"
    )
    record_figure("monitoring.no_healthy_alert_resolves_s", resolved_at - back_at)


def test_metrics_through_the_gateway_are_refused_while_prometheus_scrapes_every_worker(cluster):
    response = requests.get(f"{cluster.config.gateway_url}/metrics", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json" and response.headers["X-Request-Id"]
    assert set(response.json()) == {"title", "description"}
    wanted = passing_ids(cluster)
    wait_for(lambda: up_ids(cluster) == wanted, DISCOVERY_SECONDS, "every passing worker as an up target")
    scraped = api(cluster, "query", query='ner_http_requests_total{job="ner-worker"}')["result"]
    assert {series["metric"]["instance_id"] for series in scraped} == wanted


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalCluster]:
    with mock.patch.dict(os.environ, {**FAST, "NER_MONITOR": "1", "NER_SECURE": "1"}):
        with started_cluster("ner-monitoring-secure-", workers=1) as local:
            yield local


def test_in_secured_mode_prometheus_reads_consul_with_a_read_only_token_of_its_own(secured):
    def every_job_up() -> bool:
        targets = api(secured, "targets", state="active")["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in targets} == {
            "consul": "up",
            "gateway": "up",
            "ner-worker": "up",
            "prometheus": "up",
        }

    wait_for(every_job_up, DISCOVERY_SECONDS, "Consul's metrics and the worker scraped with the prometheus token")
    token = secured.token("prometheus")
    conf = (secured.config.run_dir / "prometheus" / "prometheus.yml").read_text()
    assert token not in conf and str(secured.token_file("prometheus")) in conf
    consul, verify = secured.consul_url, secured.mode.consul_verify()  # HTTPS, the cluster's CA
    register = requests.put(
        f"{consul}/v1/agent/service/register",
        json={"Name": "intruder", "Port": 1},
        headers={"X-Consul-Token": token},
        timeout=5,
        verify=verify,
    )
    assert register.status_code == 403
    metrics = requests.get(f"{consul}/v1/agent/metrics", params={"format": "prometheus"}, timeout=5, verify=verify)
    assert metrics.status_code == 403
