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
from tests.support.load import RequestLoop
from tests.support.processes import REPO_ROOT, free_port, wait_until

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
IMAGE_TAG = "compose-test"


def build_environment(
    docker_host: str, conf: Path, project: str, gateway_port: int, consul_port: int
) -> dict[str, str]:
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
        "NER_GATEWAY_TLS_PORT": str(free_port()),
        "NER_CONSUL_UI_PORT": str(consul_port),
        "COMPOSE_HTTP_TIMEOUT": "600",
    }


@dataclass
class ComposeProject:
    """One compose project (docker-compose.yml, plus any override files) against podman's API socket."""

    env: dict[str, str]
    conf: Path
    log: Path
    gateway_port: int
    consul_port: int
    files: tuple[Path, ...] = (COMPOSE_FILE,)
    token: str | None = None  # sent to Consul as X-Consul-Token (the secured form's operator token)
    # The secured form: Consul's API speaks HTTPS only, its certificate verified against this CA.
    consul_ca: Path | None = None

    @property
    def name(self) -> str:
        return self.env["COMPOSE_PROJECT_NAME"]

    def _compose_argv(self, *args: str) -> list[str]:
        return ["docker-compose", *(arg for path in self.files for arg in ("-f", str(path))), *args]

    def compose(self, *args: str, timeout: float = 600) -> float:
        """Run docker-compose with the project's file; seconds taken; raises on failure."""
        started = time.monotonic()
        result = run_logged(self._compose_argv(*args), self.env, self.log, timeout, cwd=REPO_ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed; see {self.log}:\n{self.log_tail()}")
        return time.monotonic() - started

    def compose_output(self, *args: str, timeout: float = 300) -> str:
        """Run docker-compose and return what it printed on stdout; raises on failure."""
        result = subprocess.run(
            self._compose_argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def service_logs(self, service: str) -> str:
        result = subprocess.run(
            self._compose_argv("logs", "--no-color", service),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
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

    def volume_path(self, volume: str) -> Path:
        """Where one of the project's named volumes lives on the host (podman runs as root here)."""
        return Path(
            podman(
                self.conf, "volume", "inspect", "--format", "{{.Mountpoint}}", f"{self.name}_{volume}"
            ).stdout.strip()
        )

    def volume_file(self, volume: str, name: str) -> str:
        return (self.volume_path(volume) / name).read_text()

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
        return f"{'https' if self.consul_ca else 'http'}://127.0.0.1:{self.consul_port}"

    @property
    def consul_verify(self) -> str | bool:
        """requests' verify= for Consul's API: the secured form's CA, else the default."""
        return str(self.consul_ca) if self.consul_ca else True

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_tls_url(self) -> str:
        """HTTPS on the published port, by a name the generated certificate holds."""
        return f"https://localhost:{self.env['NER_GATEWAY_TLS_PORT']}"

    def passing(self) -> dict[str, str]:
        """Service ID -> address of the passing ner-worker instances."""
        entries = requests.get(
            f"{self.consul_url}/v1/health/service/ner-worker",
            params={"passing": "1"},
            headers=self._consul_headers(),
            timeout=5,
            verify=self.consul_verify,
        ).json()
        return {e["Service"]["ID"]: e["Service"]["Address"] for e in entries}

    def catalog_ids(self) -> set[str]:
        """Every ner-worker instance the catalog holds, whatever its health."""
        entries = requests.get(
            f"{self.consul_url}/v1/catalog/service/ner-worker",
            headers=self._consul_headers(),
            timeout=5,
            verify=self.consul_verify,
        ).json()
        return {e["ServiceID"] for e in entries}

    def _consul_headers(self) -> dict[str, str]:
        return {"X-Consul-Token": self.token} if self.token else {}

    def wait_gateway_serving(self, payload: dict) -> float:
        """Until the gateway has rendered the passing workers into its upstream and answers 200."""
        return wait_until(
            lambda: requests.post(f"{self.gateway_url}/v1/ner", json=payload, timeout=5).ok,
            60,
            describe="the gateway serving",
            on_timeout=lambda: self.service_logs("gateway")[-4000:],
        )

    def scale_in_under(self, loop: RequestLoop, workers: int) -> float:
        """Scale the workers down while `loop` sends; seconds `up --scale` took. The loop is stopped
        only after Consul holds just `workers` instances, so it saw the whole drain."""
        loop.start()
        try:
            time.sleep(1.0)
            took = self.compose("up", "-d", "--no-build", "--scale", f"worker={workers}", timeout=300)
            wait_until(
                lambda: len(self.passing()) == workers and len(self.catalog_ids()) == workers,
                60,
                describe=f"{workers} worker(s) left in Consul",
            )
            settled_at = time.monotonic()
            time.sleep(1.0)
        finally:
            loop.stop()
        assert loop.outcomes[-1].sent_at >= settled_at, "the request loop ended before the scale-in did"
        return took
