"""docker-compose.secure.yml on real containers: ACLs, per-role tokens, Consul over HTTPS only, the rate limit, a clean drain.

The secured form runs on top of docker-compose.yml, as docs/SECURITY.md tells operators to run
it. The one-shots generate the gossip key and the tokens into volumes at the first `up`; the
tests read the operator token from its volume, as an operator would with `docker compose run`.
"""

from __future__ import annotations

import stat
import time
import uuid
from typing import Iterator

import pytest
import requests

from scripts.secured.secretfiles import SecretStore
from tests.compose.composeenv import COMPOSE_FILE, ComposeProject
from tests.compose.engine import ComposeEngine
from tests.support.load import RequestLoop
from tests.support.processes import REPO_ROOT, wait_until
from tests.support.ratelimit import assert_gateway_429, requests_until_limited

SECURE_FILE = REPO_ROOT / "docker-compose.secure.yml"
PAYLOAD = {"text": "张三在北京的清华大学工作。"}
BURST = 40  # scripts/secured/ratelimit.py's secure default: 20 r/s per client, bursts of 40
SERVICES = ("consul-tls", "gossip-key", "consul", "acl-init", "model", "worker", "gateway")


@pytest.fixture(scope="module")
def secured(engine: ComposeEngine, record_figure) -> Iterator[ComposeProject]:
    with engine.running("secure", files=(COMPOSE_FILE, SECURE_FILE)) as project:
        started = time.monotonic()
        project.compose("up", "-d", "--no-build", "--scale", "worker=2", timeout=900)
        project.token = project.volume_file("secrets", "operator.token").strip()
        # The CA's certificate as an operator takes it out of its volume: Consul is HTTPS only.
        project.consul_ca = project.volume_path("consul-ca") / "ca.pem"
        wait_until(
            lambda: len(project.passing()) == 2,
            420,
            interval=1.0,
            describe="2 passing workers",
            on_timeout=lambda: project.log_tail() + project.service_logs("worker")[-4000:],
        )
        record_figure("compose_secure_up_2_workers_passing_s", time.monotonic() - started)
        project.wait_gateway_serving(PAYLOAD)  # the renderer picks passing workers up within its quiet period
        yield project


def consul(
    project: ComposeProject, method: str, path: str, token: str | None = None, body: object = None
) -> requests.Response:
    headers = {"X-Consul-Token": token} if token else {}
    return requests.request(
        method, project.consul_url + path, headers=headers, json=body, timeout=5, verify=project.consul_verify
    )


def test_consul_answers_https_with_the_clusters_ca_and_refuses_plain_http(secured: ComposeProject) -> None:
    assert secured.consul_url.startswith("https://")
    plain = requests.get(f"http://127.0.0.1:{secured.consul_port}/v1/status/leader", timeout=5)
    assert plain.status_code == 400 and "HTTPS server" in plain.text  # no API answer over plain HTTP
    with pytest.raises(requests.exceptions.SSLError):  # not trusted without the cluster's CA
        requests.get(f"{secured.consul_url}/v1/status/leader", timeout=5)
    assert consul(secured, "GET", "/v1/status/leader").json()
    ui = consul(secured, "GET", "/ui/")
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    debug = consul(secured, "GET", "/v1/agent/self", secured.token).json()["DebugConfig"]
    assert (debug["HTTPPort"], debug["HTTPSPort"], debug["VerifyIncomingRPC"]) == (-1, 8500, True)
    # Only the CA's certificate is handed out; the keys stay 0600 in their own volumes.
    assert sorted(path.name for path in secured.volume_path("consul-ca").iterdir()) == ["ca.pem"]
    for volume, key in (("consul-tls-ca", "ca-key.pem"), ("consul-tls", "consul-key.pem")):
        assert stat.S_IMODE((secured.volume_path(volume) / key).stat().st_mode) == 0o600
    # Every client reached it over HTTPS: the workers registered, the gateway renders, no TLS error.
    for service in ("worker", "gateway", "acl-init"):
        log = secured.service_logs(service)
        assert not [sign for sign in ("SSLError", "CERTIFICATE_VERIFY_FAILED", "x509:") if sign in log], service


def test_workers_register_with_their_token_and_answer_through_the_gateway(secured: ComposeProject) -> None:
    passing = secured.passing()
    assert len(passing) == 2 and len(set(passing.values())) == 2, passing
    response = requests.post(f"{secured.gateway_url}/v1/ner", json=PAYLOAD, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["X-Worker-Id"] in passing
    assert {"PER", "LOC", "ORG"} >= {entity["type"] for entity in response.json()["entities"]}


def test_anonymous_or_wrong_tokens_can_neither_register_deregister_nor_read(secured: ComposeProject) -> None:
    victim = next(iter(secured.passing()))
    gateway_token = secured.volume_file("gateway-token", "gateway.token").strip()
    definition = {"Name": "ner-worker", "ID": "intruder-1", "Address": "127.0.0.1", "Port": 9}
    for token in (None, str(uuid.uuid4()), gateway_token):
        assert consul(secured, "PUT", "/v1/agent/service/register", token, definition).status_code == 403
        assert consul(secured, "PUT", f"/v1/agent/service/deregister/{victim}", token).status_code == 403
        assert consul(secured, "PUT", f"/v1/agent/service/maintenance/{victim}?enable=true", token).status_code == 403
        listing = consul(secured, "GET", "/v1/acl/tokens", token)
        assert listing.status_code == 403 and "SecretID" not in listing.text
    assert consul(secured, "GET", "/v1/health/service/ner-worker").json() == []  # anonymous sees nothing
    assert victim in secured.passing() and "intruder-1" not in secured.catalog_ids()


def test_secrets_are_0600_files_and_appear_in_no_container_log(secured: ComposeProject) -> None:
    store = SecretStore(secured.volume_path("secrets"))
    secrets = store.all_secrets()
    assert {"operator.token", "worker.token", "gateway.token", "consul-gossip.json"} <= set(secrets)
    for name in secrets:
        assert stat.S_IMODE(store.file(name).stat().st_mode) == 0o600, name
    logs = {service: secured.service_logs(service) for service in SERVICES}
    logs["compose"] = secured.log.read_text(errors="replace")
    assert "Gossip: true" in logs["consul"]
    leaks = [
        (secret, where)
        for secret, value in secrets.items()
        for where, text in logs.items()
        if value in text or value.replace("-", "") in text
    ]
    assert leaks == []


def test_scale_in_drains_with_the_worker_token_and_no_failed_request(secured: ComposeProject, record_figure) -> None:
    before = secured.passing()
    loop = RequestLoop(
        f"{secured.gateway_url}/v1/ner", PAYLOAD, max_requests=2000, max_seconds=120, interval=0.1
    )  # 10 r/s: under the gateway's 20 r/s per client
    took = secured.scale_in_under(loop, workers=1)
    record_figure("compose_secure_scale_2_to_1_s", took)
    record_figure("compose_secure_scale_in_requests", len(loop.outcomes))
    print(loop.summary())
    assert loop.failures == [], loop.summary()
    assert set(secured.passing()) < set(before)


def test_the_gateway_answers_json_429_past_the_per_client_burst(secured: ComposeProject) -> None:
    url = f"{secured.gateway_url}/v1/ner"
    statuses, limited = requests_until_limited(url, BURST + 60)
    assert limited is not None, statuses
    assert len(statuses) - 1 >= BURST, statuses  # at least the burst is answered first
    assert_gateway_429(limited)
    assert requests.get(f"{secured.gateway_url}/gateway/health", timeout=5).status_code == 200


def test_down_removes_every_container_network_and_volume(secured: ComposeProject) -> None:
    secured.compose("down", "-v", "-t", "30", timeout=300)
    assert secured.containers(running=False) == []
    assert secured.networks() == []
    assert secured.volumes() == []
