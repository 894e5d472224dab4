"""docker-compose.yml's canary (checked statically): off by default, a model step and volume of its own,
the same service as the workers under another version, in the plain and the secured form."""

from __future__ import annotations

import pytest

from tests.integration.test_compose_file import COMPOSE_FILE, resolve_config
from tests.support.processes import REPO_ROOT

SECURE_FILE = REPO_ROOT / "docker-compose.secure.yml"
CANARY_SERVICES = ("model-canary", "worker-canary")


@pytest.fixture(scope="module")
def services() -> dict:
    return resolve_config(COMPOSE_FILE)["services"]


def test_the_canary_services_run_only_with_the_canary_profile(services: dict) -> None:
    for name in CANARY_SERVICES:
        assert services[name]["profiles"] == ["canary"], name
    assert all(not service.get("profiles") for name, service in services.items() if name in ("model", "worker"))


def test_the_canary_reads_its_model_from_a_volume_its_own_model_step_fills(services: dict) -> None:
    canary, step = services["worker-canary"], services["model-canary"]
    assert canary["depends_on"]["model-canary"]["condition"] == "service_completed_successfully"
    assert canary["volumes"] == ["models-canary:/models:ro"]
    assert step["volumes"] == ["models-canary:/models:rw"] and step["restart"] == "no"
    assert step["environment"]["NER_MODEL_DIR"] == canary["environment"]["NER_MODEL_DIR"]


def test_the_canary_registers_in_the_workers_service_under_another_version(services: dict) -> None:
    canary, worker = services["worker-canary"]["environment"], services["worker"]["environment"]
    assert canary["NER_MODEL_VERSION"] == "canary" and worker["NER_MODEL_VERSION"] == ""
    assert "NER_SERVICE_NAME" not in canary and canary["CONSUL_HTTP_ADDR"] == worker["CONSUL_HTTP_ADDR"]


def test_the_secured_canary_gets_the_workers_token_and_consuls_ca() -> None:
    services = resolve_config(COMPOSE_FILE, SECURE_FILE)["services"]
    canary, worker = services["worker-canary"], services["worker"]
    assert canary["environment"]["CONSUL_HTTP_ADDR"] == worker["environment"]["CONSUL_HTTP_ADDR"]
    assert canary["environment"]["CONSUL_CACERT"] == worker["environment"]["CONSUL_CACERT"]
    assert {"worker-token:/secrets:ro", "consul-ca:/consul-ca:ro"} <= set(canary["volumes"])
    assert canary["depends_on"]["acl-init"]["condition"] == "service_completed_successfully"
