"""docker-compose.yml on real containers: scale out to 3, scale in to 1 with no failed request, down.

Runs the repository's compose file with Debian's docker-compose against podman's Docker API;
base images are local stand-ins (tests/compose/standins.py). `make test-compose` runs it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.compose import podman as podman_tools
from tests.compose.composeenv import ComposeProject, build_environment
from tests.compose.standins import STANDINS, ensure_standins
from tests.support.load import RequestLoop
from tests.support.processes import REPO_ROOT, free_port, wait_until

WORK = REPO_ROOT / ".local" / "compose-test"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "compose"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PAYLOAD = {"text": "张三在北京的清华大学工作。"}


def fill_wheelhouse(conf: Path, log: Path) -> float:
    """Every pinned wheel into wheels/: first with this machine's pip set-up (where torch's CPU
    build is a local wheel), then topped up by pip inside the worker's base image, which
    evaluates markers such as python_full_version < "3.11.3" for the image's own Python."""
    started = time.monotonic()
    wheels = REPO_ROOT / "wheels"
    result = podman_tools.run_logged(
        [str(REPO_ROOT / ".venv/bin/pip"), "download", "-q", "--disable-pip-version-check", "-d", str(wheels),
         "-r", str(REPO_ROOT / "requirements.txt"), "-c", str(REPO_ROOT / "requirements.lock")],
        dict(os.environ), log, 900)
    assert result.returncode == 0, f"pip download failed; see {log}"
    top_up = ("python3 -m venv /tmp/venv && /tmp/venv/bin/pip download -q --disable-pip-version-check "
              "--find-links /wheels -d /wheels -r /req/requirements.txt -c /req/requirements.lock")
    result = podman_tools.run_logged(
        ["podman", "run", "--rm", "-v", f"{wheels}:/wheels", "-v", f"{REPO_ROOT}:/req:ro",
         # This machine's CA bundle: HTTPS to PyPI may pass a proxy whose CA only the host trusts.
         "-v", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/host-ca.crt:ro", "-e", "PIP_CERT=/etc/ssl/certs/host-ca.crt",
         STANDINS["python"].tag, "sh", "-c", top_up], podman_tools.podman_env(conf), log, 900)
    assert result.returncode == 0, f"pip download in the base image failed; see {log}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def project(record_figure) -> Iterator[ComposeProject]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "compose.log"
    log.write_text("")
    conf = podman_tools.write_containers_conf(WORK)
    for name, seconds in ensure_standins(conf, ARTIFACTS / "standins.log").items():
        record_figure(f"compose_standin_{name}_build_s", seconds)
    record_figure("compose_wheelhouse_s", fill_wheelhouse(conf, log))
    service = podman_tools.start_api_service(conf, ARTIFACTS)
    env = build_environment(service.docker_host, conf, f"nercompose{os.getpid()}", free_port(), free_port())
    compose = ComposeProject(env=env, conf=conf, log=log, gateway_port=int(env["NER_GATEWAY_PORT"]),
                             consul_port=int(env["NER_CONSUL_UI_PORT"]))
    try:
        record_figure("compose_build_worker_s", compose.compose("build", "worker", timeout=1800))
        record_figure("compose_build_gateway_s", compose.compose("build", "gateway", timeout=900))
        yield compose
    finally:
        try:
            compose.compose("down", "-v", "--remove-orphans", "-t", "30", timeout=300)
        except RuntimeError as error:
            print(error)
        service.stop()


def test_scale_out_to_three_registers_three_distinct_instances(project: ComposeProject, record_figure) -> None:
    started = time.monotonic()
    project.compose("up", "-d", "--no-build", "--scale", "worker=3", timeout=900)
    took = wait_until(lambda: len(project.passing()) == 3, 420, interval=1.0, describe="3 passing workers",
                      on_timeout=lambda: project.log_tail() + project.service_logs("worker")[-4000:])
    record_figure("compose_up_3_workers_passing_s", time.monotonic() - started)
    print(f"3 workers passing {took:.1f}s after `up` returned")

    passing = project.passing()
    containers = project.containers("worker")
    container_ips = {project.container_ip(c["Id"]) for c in containers}
    assert len(containers) == 3
    assert len(set(passing)) == 3, passing
    assert set(passing.values()) == container_ips, (passing, container_ips)

    wait_until(lambda: requests.post(f"{project.gateway_url}/v1/ner", json=PAYLOAD, timeout=5).ok, 60,
               describe="the gateway serving", on_timeout=lambda: project.service_logs("gateway")[-4000:])
    seen = set()
    for _ in range(60):
        response = requests.post(f"{project.gateway_url}/v1/ner", json=PAYLOAD, timeout=10,
                                 headers={"Connection": "close"})
        assert response.status_code == 200, response.text
        seen.add(response.headers["X-Worker-Id"])
        if seen == set(passing):
            break
    assert seen == set(passing)


def test_gateway_says_which_renderer_it_runs(project: ComposeProject) -> None:
    logs = project.service_logs("gateway")
    if "consul-template not found" in logs:
        print("gateway: consul-template is not in the image (HashiCorp's release site is not reachable "
              "here); it runs the project renderer render_upstream.py")
        assert "project renderer" in logs
    else:
        assert "renderer: consul-template" in logs


def test_image_health_checks_pass(project: ComposeProject) -> None:
    for service in ("worker", "gateway"):
        for container in project.containers(service):
            status, health = project.healthcheck(container["Id"])
            assert status == 0, f"{service} {container['Names']}: {health}"


def test_scale_in_to_one_drains_with_no_failed_request(project: ComposeProject, record_figure) -> None:
    before = project.passing()
    loop = RequestLoop(f"{project.gateway_url}/v1/ner", PAYLOAD, max_requests=50000, max_seconds=120).start()
    try:
        time.sleep(1.0)
        took = project.compose("up", "-d", "--no-build", "--scale", "worker=1", timeout=300)
        wait_until(lambda: len(project.passing()) == 1 and len(project.catalog_ids()) == 1, 60,
                   describe="one worker left in Consul")
        settled_at = time.monotonic()
        time.sleep(1.0)
    finally:
        loop.stop()
    assert loop.outcomes[-1].sent_at >= settled_at, "the request loop ended before the scale-in did"
    record_figure("compose_scale_3_to_1_s", took)
    record_figure("compose_scale_in_requests", len(loop.outcomes))
    record_figure("compose_scale_in_failed_requests", len(loop.failures))
    print(loop.summary())
    assert loop.failures == [], loop.summary()
    assert len(project.containers("worker")) == 1
    assert set(project.passing()) <= set(before)


def test_down_leaves_no_containers_networks_or_consul_entries(project: ComposeProject) -> None:
    project.compose("down", "-t", "30", timeout=300)
    assert project.containers(running=False) == []
    assert project.networks() == []
    # Consul's state is in its volume, which `down` keeps: start Consul alone on it and look.
    project.compose("up", "-d", "--no-build", "consul", timeout=300)
    wait_until(lambda: requests.get(f"{project.consul_url}/v1/status/leader", timeout=2).json(), 60,
               describe="consul back on its old state")
    assert project.catalog_ids() == set()
    project.compose("down", "-v", "-t", "10", timeout=300)
    assert project.containers(running=False) == []
    assert project.networks() == []
    assert project.volumes() == []
