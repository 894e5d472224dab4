"""docker-compose.yml on real containers: scale out to 3, HTTPS with the generated CA and its
rotation, scale in to 1 with no failed request, down.

Runs the repository's compose file with Debian's docker-compose against podman's Docker API;
base images are local stand-ins (tests/compose/standins.py). `make test-compose` runs it.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.compose.composeenv import ComposeProject
from tests.compose.engine import ComposeEngine
from tests.compose.podman import podman
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


@pytest.fixture(scope="module")
def gateway_ca(project: ComposeProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA certificate the gateway generated into its volume at the first start: all a client trusts."""
    path = tmp_path_factory.mktemp("gateway-ca") / "ca.pem"
    path.write_text(project.volume_file("gateway-tls", "ca.pem"))
    return path


def served_certificate(project: ComposeProject) -> bytes:
    """The certificate a new HTTPS connection to the published port gets (DER)."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", int(project.env["NER_GATEWAY_TLS_PORT"]))))


def test_https_answers_a_client_that_trusts_only_the_generated_ca(project: ComposeProject, gateway_ca: Path) -> None:
    response = requests.post(f"{project.gateway_tls_url}/v1/ner", json=PAYLOAD, verify=str(gateway_ca), timeout=10)
    assert response.status_code == 200, response.text
    assert {entity["span"] for entity in response.json()["entities"]} >= {"张三", "北京"}


def test_a_rotated_certificate_is_served_after_a_reload_with_no_failed_request(
    project: ComposeProject, gateway_ca: Path
) -> None:
    before = served_certificate(project)
    url = f"{project.gateway_tls_url}/v1/ner"
    loop = RequestLoop(url, PAYLOAD, max_requests=2000, max_seconds=120, interval=0.05, verify=str(gateway_ca))
    gateway = project.containers("gateway")[0]["Id"]
    loop.start()
    try:
        time.sleep(2.0)
        podman(project.conf, "exec", gateway, "/etc/ner-gateway/gateway-tls.sh", "rotate", timeout=60)
        on_disk = ssl.PEM_cert_to_DER_cert(project.volume_file("gateway-tls", "gateway.pem"))
        wait_until(lambda: served_certificate(project) == on_disk, 20, describe="the new certificate served")
        time.sleep(2.0)
    finally:
        loop.stop()
    print(loop.summary())
    assert on_disk != before
    assert loop.failures == [], loop.summary()


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
