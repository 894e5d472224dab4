"""docker-compose.yml's canary on real containers: the profile adds a second model version beside the
workers, the registrar's rollout commands (run inside a worker container) give it a share, a pin reaches
it alone, and a rollback under load fails no request and leaves only the default version registered.

`make test-compose` runs it, after tests/compose/test_compose.py, on the same podman engine.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Iterator

import pytest
import requests

from tests.compose.composeenv import ComposeProject
from tests.compose.engine import ComposeEngine
from tests.compose.podman import podman
from tests.support.load import RequestLoop
from tests.support.processes import wait_until

PAYLOAD = {"text": "张三在北京的清华大学工作。"}
# The canary is named explicitly, whatever the default model is: the model shipped for rollouts.
CANARY_MODEL = "raner-msra-lstm"
CANARY = f"{CANARY_MODEL}@canary"
UPSTREAM_CONF = "/run/ner-gateway/upstream.conf"  # NER_NGINX_PREFIX's default, gateway-entrypoint.sh
SHARE_REQUESTS = 1000
SHARE_TOLERANCE = 6.0  # points; about 4 standard deviations of a 50 % share over 1,000 requests


def live_versions(project: ComposeProject) -> set[str]:
    entries = requests.get(
        f"{project.consul_url}/v1/health/service/ner-worker", params={"passing": "1"}, timeout=5
    ).json()
    return {f"{e['Service']['Meta']['model']}@{e['Service']['Meta']['model_version']}" for e in entries}


def registrar(project: ComposeProject, *args: str) -> float:
    """`python -m registrar ...` inside the first worker container, as docs/DEPLOY.md does it."""
    return project.compose("exec", "-T", "worker", "python", "-m", "registrar", *args, timeout=180)


def served_by(project: ComposeProject, count: int, headers: dict | None = None) -> Counter:
    """Which version answered each of `count` sequential requests (the X-Model-Version header)."""
    seen: Counter = Counter()
    with requests.Session() as session:
        for _ in range(count):
            response = session.post(f"{project.gateway_url}/v1/ner", json=PAYLOAD, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            assert response.headers["X-Model-Version"] == response.json()["model"]
            seen[response.headers["X-Model-Version"]] += 1
    return seen


def wait_share_rendered(project: ComposeProject, percent: str) -> None:
    """Until the gateway's upstream gives the canary its share (the renderer reads KV about once a second)."""
    gateway = project.containers("gateway")[0]["Id"]
    line = f"{percent}% ner_v_{CANARY.replace('@', '_')};"

    def rendered() -> bool:
        upstream = podman(project.conf, "exec", gateway, "cat", UPSTREAM_CONF, check=False).stdout
        return line in upstream

    wait_until(rendered, 30, describe=f"{line!r} in the gateway's upstream")
    time.sleep(1.0)  # nginx's old worker processes finish with the old split


@pytest.fixture(scope="module")
def project(engine: ComposeEngine) -> Iterator[ComposeProject]:
    with engine.running("canary") as compose:
        compose.env["NER_CANARY_MODEL_NAME"] = CANARY_MODEL
        compose.env["NER_CANARY_MODEL_VERSION"] = "canary"
        compose.compose("up", "-d", "--no-build", "--scale", "worker=1", timeout=900)
        wait_until(lambda: len(compose.passing()) == 1, 420, interval=1.0, describe="1 passing worker")
        compose.wait_gateway_serving(PAYLOAD)
        yield compose


def test_plain_up_starts_no_canary(project: ComposeProject) -> None:
    assert project.containers("worker-canary", running=False) == []
    assert project.containers("model-canary", running=False) == []
    assert len(live_versions(project)) == 1


def test_the_canary_profile_adds_a_second_version_from_its_own_model_volume(
    project: ComposeProject, record_figure
) -> None:
    started = time.monotonic()
    project.compose("--profile", "canary", "up", "-d", "--no-build", "worker-canary", timeout=900)
    wait_until(
        lambda: CANARY in live_versions(project) and len(live_versions(project)) == 2,
        420,
        interval=1.0,
        describe="the canary passing beside the default version",
        on_timeout=lambda: project.service_logs("worker-canary")[-4000:],
    )
    record_figure("compose_canary_passing_s", time.monotonic() - started)
    assert len(project.containers("worker")) == 1, "starting the canary must not touch the default workers"
    assert (project.volume_path("models-canary") / CANARY_MODEL / "configuration.json").is_file()


def test_a_rollout_from_a_worker_container_gives_the_canary_its_share(project: ComposeProject, record_figure) -> None:
    registrar(project, "rollout", CANARY, "--canary", "50", "--watch", "0")
    wait_share_rendered(project, "50")
    seen = served_by(project, SHARE_REQUESTS)
    share = 100.0 * seen[CANARY] / SHARE_REQUESTS
    record_figure("compose_canary_50_measured_percent", share)
    print(f"canary share at 50 %: {share:.1f} % of {SHARE_REQUESTS} ({dict(seen)})")
    assert abs(share - 50.0) <= SHARE_TOLERANCE, seen


def test_a_pinned_request_reaches_only_the_canary(project: ComposeProject) -> None:
    assert served_by(project, 100, {"X-Model-Version": CANARY}) == Counter({CANARY: 100})


def test_versions_lists_both_side_by_side_with_their_requests(project: ComposeProject) -> None:
    result = project.compose_output("exec", "-T", "worker", "python", "-m", "registrar", "versions", "--json")
    rows = {row["version"]: row for row in map(json.loads, result.splitlines())}
    assert set(rows) == live_versions(project)
    assert rows[CANARY]["share"] == 50.0 and rows[CANARY]["requests"] >= 100


def test_a_rollback_under_load_fails_no_request_and_leaves_the_default_version(
    project: ComposeProject, record_figure
) -> None:
    (default,) = live_versions(project) - {CANARY}
    loop = RequestLoop(f"{project.gateway_url}/v1/ner", PAYLOAD, max_requests=5000, max_seconds=180, interval=0.02)
    loop.start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        registrar(project, "rollback")
        project.compose("--profile", "canary", "stop", "-t", "30", "worker-canary", timeout=300)
        wait_until(lambda: live_versions(project) == {default}, 60, describe="only the default version in Consul")
        record_figure("compose_canary_rollback_s", time.monotonic() - started)
        time.sleep(1.0)
    finally:
        loop.stop()
    record_figure("compose_canary_rollback_requests", len(loop.outcomes))
    record_figure("compose_canary_rollback_failed_requests", len(loop.failures))
    print(loop.summary())
    assert loop.failures == [], loop.summary()
    assert len(project.catalog_ids()) == 1
