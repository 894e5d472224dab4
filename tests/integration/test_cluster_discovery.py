"""Workers join and leave the gateway through Consul, live, and clients see no failures."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import requests

from scripts.localcluster import LocalCluster
from tests.support.load import RequestLoop
from tests.support.waiting import wait_for, wait_outcomes

TEXT = {"text": "张三在北京的清华大学工作。"}
# Answers the request loop collects before a failure and after it, so both sides of it are seen.
SETTLE_OUTCOMES = 20


def instance_on_port(cluster: LocalCluster, port: int) -> dict | None:
    """The passing Consul instance registered for a local port, if any."""
    return next((s for s in cluster.passing() if s["Port"] == port), None)


def upstream_text(cluster: LocalCluster) -> str:
    return (cluster.nginx_dir() / "upstream.conf").read_text()


def in_upstream(cluster: LocalCluster, port: int) -> bool:
    return f":{port} " in upstream_text(cluster) or f":{port};" in upstream_text(cluster)


def test_every_worker_registers_itself_as_passing_with_its_address_port_and_model(two_workers):
    services = two_workers.passing()
    ports = {proc.port for proc in two_workers.workers().values()}
    assert {s["Port"] for s in services} == ports
    for service in services:
        assert service["Service"] == "ner-worker"
        assert service["Address"] == "127.0.0.1"
        assert service["ID"].startswith("ner-worker-")
        assert service["Meta"]["model"] == "lac-msra-lstm"
        assert service["Meta"]["model_version"]
    assert len({s["ID"] for s in services}) == 2


def test_requests_through_the_gateway_are_spread_over_all_workers(two_workers):
    ids = {s["ID"] for s in two_workers.passing()}
    served = set()
    for _ in range(20):
        response = requests.post(f"{two_workers.config.gateway_url}/v1/ner", json=TEXT, timeout=10)
        assert response.status_code == 200
        served.add(response.headers["X-Worker-Id"])
    assert served == ids


def test_a_new_worker_serves_through_the_gateway_within_5s_of_becoming_healthy(two_workers, record_figure):
    started = time.monotonic()
    proc = two_workers.start_worker()
    wait_for(lambda: instance_on_port(two_workers, proc.port) is not None, 60, "third worker passing")
    passing_at = time.monotonic()
    worker_id = instance_on_port(two_workers, proc.port)["ID"]

    def served_by_new_worker() -> bool:
        response = requests.post(f"{two_workers.config.gateway_url}/v1/ner", json=TEXT, timeout=5)
        return response.headers.get("X-Worker-Id") == worker_id

    to_traffic = wait_for(served_by_new_worker, 5, "traffic on the new worker", interval=0.02)
    record_figure("join.start_to_passing_s", passing_at - started)
    record_figure("join.passing_to_traffic_s", to_traffic)


def test_sigterm_drains_a_worker_with_zero_failed_requests(two_workers, record_figure):
    victim = list(two_workers.workers().values())[0]
    victim_id = instance_on_port(two_workers, victim.port)["ID"]
    loop = RequestLoop(f"{two_workers.config.gateway_url}/v1/ner", TEXT, max_requests=3000, max_seconds=40).start()
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    signalled = time.monotonic()
    os.kill(victim.pid, signal.SIGTERM)
    wait_for(lambda: not in_upstream(two_workers, victim.port), 10, "drained worker out of the upstream")
    left = time.monotonic() - signalled
    wait_for(lambda: not victim.alive(), 30, "drained worker to exit")
    exited = time.monotonic() - signalled
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    loop.stop()
    assert loop.failures == [], loop.summary()
    assert victim_id not in {s["ID"] for s in two_workers.passing()}
    assert victim_id not in two_workers_agent_services(two_workers)
    record_figure("drain.sigterm_to_out_of_upstream_s", left)
    record_figure("drain.sigterm_to_exit_s", exited)
    record_figure("drain.failed_requests", len(loop.failures))
    record_figure("drain.requests", len(loop.outcomes))


def two_workers_agent_services(cluster: LocalCluster) -> set[str]:
    """IDs the local agent still holds (a drained worker deregisters itself)."""
    return set(requests.get(f"{cluster.config.consul_url}/v1/agent/services", timeout=5).json())


def test_kill_9_removes_a_worker_within_5s_with_zero_failed_requests(two_workers, record_figure):
    victim = list(two_workers.workers().values())[-1]
    loop = RequestLoop(f"{two_workers.config.gateway_url}/v1/ner", TEXT, max_requests=3000, max_seconds=30).start()
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    os.killpg(victim.pid, signal.SIGKILL)
    gone = wait_for(
        lambda: not in_upstream(two_workers, victim.port), 5, "killed worker out of the upstream", interval=0.02
    )
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    loop.stop()
    assert loop.failures == [], loop.summary()
    record_figure("kill9.to_out_of_upstream_s", gone)
    record_figure("kill9.failed_requests", len(loop.failures))
    record_figure("kill9.requests", len(loop.outcomes))


def test_with_zero_workers_the_gateway_answers_json_503_fast_and_its_config_stays_valid(two_workers, record_figure):
    two_workers.scale(0)
    url = f"{two_workers.config.gateway_url}/v1/ner"
    wait_for(lambda: requests.post(url, json=TEXT, timeout=5).status_code == 503, 10, "gateway 503")
    timings = []
    for _ in range(20):
        started = time.monotonic()
        response = requests.post(url, json=TEXT, timeout=5)
        timings.append(time.monotonic() - started)
        assert response.status_code == 503
        assert response.headers["Content-Type"].startswith("application/json")
        assert set(response.json()) >= {"title", "description"}
    check = subprocess.run(
        [two_workers.config.nginx_bin, "-t", *two_workers.nginx_args()], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr
    record_figure("zero_workers.max_503_latency_s", max(timings))


def test_a_worker_started_after_zero_serves_again(two_workers):
    two_workers.scale(0)
    url = f"{two_workers.config.gateway_url}/v1/ner"
    wait_for(lambda: requests.post(url, json=TEXT, timeout=5).status_code == 503, 10, "gateway 503")
    two_workers.scale(1)
    wait_for(lambda: requests.post(url, json=TEXT, timeout=5).status_code == 200, 10, "gateway serving again")


def test_consul_restart_loses_state_and_workers_register_again_within_15s(two_workers, record_figure):
    ids_before = {s["ID"] for s in two_workers.passing()}
    consul = two_workers.live()["consul"]
    loop = RequestLoop(f"{two_workers.config.gateway_url}/v1/ner", TEXT, max_requests=5000, max_seconds=60).start()
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    os.kill(consul.pid, signal.SIGKILL)
    wait_for(lambda: not consul.alive(), 10, "consul to die")
    restarted = time.monotonic()
    two_workers.start_consul()
    back = wait_for(
        lambda: {s["ID"] for s in two_workers.passing()} == ids_before, 15, "workers registered again", interval=0.1
    )
    total = time.monotonic() - restarted
    wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
    loop.stop()
    assert loop.failures == [], loop.summary()
    record_figure("consul_restart.reregistered_s", total)
    del back


def test_up_on_a_running_cluster_starts_only_what_is_missing(two_workers):
    before = {name: proc.pid for name, proc in two_workers.live().items()}
    consul = two_workers.live()["consul"]
    os.kill(consul.pid, signal.SIGKILL)
    wait_for(lambda: not consul.alive(), 10, "consul to die")
    two_workers.up(2)
    after = {name: proc.pid for name, proc in two_workers.live().items()}
    assert after["consul"] != before["consul"]
    assert {n: p for n, p in after.items() if n != "consul"} == {n: p for n, p in before.items() if n != "consul"}
