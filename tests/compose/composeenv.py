"""The compose project under test: environment, docker-compose calls, and what Consul and podman report."""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.compose.podman import podman, run_logged
from tests.compose.standins import STANDINS
from tests.support.processes import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
IMAGE_TAG = "compose-test"


def build_environment(docker_host: str, conf: Path, project: str, gateway_port: int,
                      consul_port: int) -> dict[str, str]:
    """Variables the compose file reads: stand-in bases, an offline build, loopback-only ports."""
    return {
        **os.environ,
        "DOCKER_HOST": docker_host,
        "CONTAINERS_CONF": str(conf),
        "COMPOSE_PROJECT_NAME": project,
        "PYTHON_IMAGE": STANDINS["python"].tag,
        "NGINX_IMAGE": STANDINS["nginx"].tag,
        "CONSUL_IMAGE": STANDINS["consul"].tag,
        # HashiCorp's release site is not reachable here: no consul-template in the image.
        "CONSUL_TEMPLATE_VERSION": "",
        # Only PyPI is reachable: every wheel, torch's CPU build included, comes from wheels/.
        "TORCH_INDEX_URL": "",
        "PIP_OFFLINE": "1",
        "NER_IMAGE_TAG": IMAGE_TAG,
        "NER_PUBLISH_ADDR": "127.0.0.1",
        "NER_GATEWAY_PORT": str(gateway_port),
        "NER_CONSUL_UI_PORT": str(consul_port),
        "COMPOSE_HTTP_TIMEOUT": "600",
    }


@dataclass
class ComposeProject:
    """One compose project (the repository's docker-compose.yml) against podman's API socket."""

    env: dict[str, str]
    conf: Path
    log: Path
    gateway_port: int
    consul_port: int

    @property
    def name(self) -> str:
        return self.env["COMPOSE_PROJECT_NAME"]

    def compose(self, *args: str, timeout: float = 600) -> float:
        """Run docker-compose with the project's file; seconds taken; raises on failure."""
        started = time.monotonic()
        result = run_logged(["docker-compose", "-f", str(COMPOSE_FILE), *args], self.env, self.log,
                            timeout, cwd=REPO_ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed; see {self.log}:\n{self.log_tail()}")
        return time.monotonic() - started

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def service_logs(self, service: str) -> str:
        result = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "logs", "--no-color", service],
                                env=self.env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
        return result.stdout + result.stderr

    # ---- what podman has for this project ---------------------------------------------------
    def _label_filter(self) -> str:
        return f"label=com.docker.compose.project={self.name}"

    def containers(self, service: str | None = None, running: bool = True) -> list[dict[str, Any]]:
        args = ["ps", "--format", "json", "--filter", self._label_filter()]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if not running:
            args.append("--all")
        return json.loads(podman(self.conf, *args).stdout or "[]")

    def container_ip(self, container_id: str) -> str:
        inspected = json.loads(podman(self.conf, "inspect", container_id).stdout)[0]
        networks = inspected["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def networks(self) -> list[str]:
        out = podman(self.conf, "network", "ls", "--format", "{{.Name}}").stdout.split()
        return [name for name in out if name.startswith(f"{self.name}_")]

    def volumes(self) -> list[str]:
        out = podman(self.conf, "volume", "ls", "--format", "{{.Name}}").stdout.split()
        return [name for name in out if name.startswith(f"{self.name}_")]

    def healthcheck(self, container_id: str, tries: int = 3) -> tuple[int, str]:
        """Run the container's health check (no systemd here to schedule it) up to `tries` times,
        as its `retries` allows; the last exit status and what podman recorded for it."""
        status = -1
        for _ in range(tries):
            status = podman(self.conf, "healthcheck", "run", container_id, check=False, timeout=30).returncode
            if status == 0:
                break
        health = podman(self.conf, "inspect", "--format", "{{json .State.Health}}", container_id, check=False)
        return status, health.stdout[-1500:]

    # ---- Consul and the gateway, on the published loopback ports ----------------------------
    @property
    def consul_url(self) -> str:
        return f"http://127.0.0.1:{self.consul_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def passing(self) -> dict[str, str]:
        """Service ID -> address of the passing ner-worker instances."""
        entries = requests.get(f"{self.consul_url}/v1/health/service/ner-worker", params={"passing": "1"},
                               timeout=5).json()
        return {e["Service"]["ID"]: e["Service"]["Address"] for e in entries}

    def catalog_ids(self) -> set[str]:
        """Every ner-worker instance the catalog holds, whatever its health."""
        entries = requests.get(f"{self.consul_url}/v1/catalog/service/ner-worker", timeout=5).json()
        return {e["ServiceID"] for e in entries}
