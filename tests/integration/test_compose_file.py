"""docker-compose.yml is valid and keeps the properties scaling depends on (checked statically)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.processes import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def compose_command() -> list[str] | None:
    """Debian's docker-compose, or the docker CLI's compose plugin, whichever is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def resolve_config(*files: Path) -> dict:
    """Compose files as the tool merges and resolves them (anchors, overrides, defaults)."""
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed (setup.sh installs docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NER_", "PYTHON_IMAGE", "NGINX_IMAGE"))}
    args = [arg for path in files for arg in ("-f", str(path))]
    check = subprocess.run(
        [*command, *args, "config", "-q"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT
    )
    assert check.returncode == 0, check.stderr
    full = subprocess.run(
        [*command, *args, "config"], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT, check=True
    )
    return yaml.safe_load(full.stdout)


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The compose file as the tool resolves it (anchors merged, defaults filled in)."""
    return resolve_config(COMPOSE_FILE)


def test_workers_publish_no_host_port_so_they_scale(resolved: dict) -> None:
    worker = resolved["services"]["worker"]
    assert not worker.get("ports")
    assert "container_name" not in worker
    assert "NER_ADVERTISE_ADDRESS" not in worker["environment"]


def test_workers_start_after_the_model_step_completed(resolved: dict) -> None:
    depends = resolved["services"]["worker"]["depends_on"]
    assert depends["model"]["condition"] == "service_completed_successfully"
    assert resolved["services"]["model"]["restart"] == "no"
    assert "models" in resolved["volumes"]


def test_gateway_and_consul_ui_are_published(resolved: dict) -> None:
    def published(service: str) -> set[int]:
        # Long form (compose v2) or "host:published:target/proto" (docker-compose 1.x).
        return {
            int(p["target"]) if isinstance(p, dict) else int(str(p).split("/")[0].rsplit(":", 1)[1])
            for p in resolved["services"][service]["ports"]
        }

    assert 8080 in published("gateway")
    assert 8500 in published("consul")


def test_every_long_running_service_has_health_restart_and_limits(resolved: dict) -> None:
    for name in ("consul", "worker", "gateway"):
        service = resolved["services"][name]
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name
        assert service.get("mem_limit") and service.get("cpus"), name


def test_base_images_are_build_arguments(resolved: dict) -> None:
    services = resolved["services"]
    assert services["worker"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"
    assert services["gateway"]["build"]["args"]["NGINX_IMAGE"].startswith("nginx:")
    assert services["consul"]["image"].startswith("hashicorp/consul:")
    assert services["worker"]["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
