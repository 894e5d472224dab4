"""docker-compose.yml on real containers: scale out to 3, scale in to 1 with no failed request, down.

Runs the repository's compose file with Debian's docker-compose against podman's Docker API;
base images are local stand-ins (tests/compose/standins.py). `make test-compose` runs it.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest
import requests

from tests.compose.composeenv import ComposeProject
from tests.compose.engine import ComposeEngine
from tests.support.load import RequestLoop
from tests.support.processes import wait_until

PAYLOAD = {"text": "张三在北京的清华大学工作。"}


@pytest.fixture(scope="module")
def project(engine: ComposeEngine) -> Iterator[ComposeProject]:
    with engine.running("compose") as compose:
        yield compose


def test_scale_out_to_three_registers_three_distinct_instances(project: ComposeProject, record_figure) -> None:
    started = time.monotonic()
    project.compose("up", "-d", "--no-build", "--scale", "worker=3", timeout=900)
    took = wait_until(
        lambda: len(project.passing()) == 3,
        420,
        interval=1.0,
        describe="3 passing workers",
        on_timeout=lambda: project.log_tail() + project.service_logs("worker")[-4000:],
    )
    record_figure("compose_up_3_workers_passing_s", time.monotonic() - started)
    print(f"3 workers passing {took:.1f}s after `up` returned")

    passing = project.passing()
    containers = project.containers("worker")
    container_ips = {project.container_ip(c["Id"]) for c in containers}
    assert len(containers) == 3
    assert len(set(passing)) == 3, passing
    assert set(passing.values()) == container_ips, (passing, container_ips)

    project.wait_gateway_serving(PAYLOAD)
    seen = set()
    for _ in range(60):
        response = requests.post(
            f"{project.gateway_url}/v1/ner", json=PAYLOAD, timeout=10, headers={"Connection": "close"}
        )
        assert response.status_code == 200, response.text
        seen.add(response.headers["X-Worker-Id"])
        if seen == set(passing):
            break
    assert seen == set(passing)


def test_gateway_says_which_renderer_it_runs(project: ComposeProject) -> None:
    logs = project.service_logs("gateway")
    if "consul-template not found" in logs:
        print(
            "gateway: consul-template is not in the image (HashiCorp's release site is not reachable "
            "here); it runs the project renderer upstream_renderer"
        )
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
    loop = RequestLoop(f"{project.gateway_url}/v1/ner", PAYLOAD, max_requests=50000, max_seconds=120)
    took = project.scale_in_under(loop, workers=1)
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
    wait_until(
        lambda: requests.get(f"{project.consul_url}/v1/status/leader", timeout=2).json(),
        60,
        describe="consul back on its old state",
    )
    assert project.catalog_ids() == set()
    project.compose("down", "-v", "-t", "10", timeout=300)
    assert project.containers(running=False) == []
    assert project.networks() == []
    assert project.volumes() == []
