"""The container engine every compose test shares: podman's API, stand-in bases, and the built images."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tests.compose import podman as podman_tools
from tests.compose.composeenv import COMPOSE_FILE, ComposeProject, build_environment
from tests.compose.standins import STANDINS, ensure_standins
from tests.support.processes import REPO_ROOT, free_port

WORK = REPO_ROOT / ".local" / "compose-test"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "compose"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def fill_wheelhouse(conf: Path, log: Path) -> float:
    """Every pinned wheel into wheels/: first with this machine's pip set-up (where torch's CPU
    build is a local wheel), then topped up by pip inside the worker's base image, which
    evaluates markers such as python_full_version < "3.11.3" for the image's own Python."""
    started = time.monotonic()
    wheels = REPO_ROOT / "wheels"
    result = podman_tools.run_logged(
        [
            str(REPO_ROOT / ".venv/bin/pip"),
            "download",
            "-q",
            "--disable-pip-version-check",
            "-d",
            str(wheels),
            "-r",
            str(REPO_ROOT / "requirements.txt"),
            "-c",
            str(REPO_ROOT / "requirements.lock"),
        ],
        dict(os.environ),
        log,
        900,
    )
    assert result.returncode == 0, f"pip download failed; see {log}"
    top_up = (
        "python3 -m venv /tmp/venv && /tmp/venv/bin/pip download -q --disable-pip-version-check "
        "--find-links /wheels -d /wheels -r /req/requirements.txt -c /req/requirements.lock"
    )
    result = podman_tools.run_logged(
        [
            "podman",
            "run",
            "--rm",
            "-v",
            f"{wheels}:/wheels",
            "-v",
            f"{REPO_ROOT}:/req:ro",
            # This machine's CA bundle: HTTPS to PyPI may pass a proxy whose CA only the host trusts.
            "-v",
            f"{HOST_CA_BUNDLE}:/etc/ssl/certs/host-ca.crt:ro",
            "-e",
            "PIP_CERT=/etc/ssl/certs/host-ca.crt",
            STANDINS["python"].tag,
            "sh",
            "-c",
            top_up,
        ],
        podman_tools.podman_env(conf),
        log,
        900,
    )
    assert result.returncode == 0, f"pip download in the base image failed; see {log}"
    return time.monotonic() - started


@dataclass
class ComposeEngine:
    """podman's Docker API with the project's images built; hands out compose projects on it."""

    conf: Path
    service: podman_tools.ApiService

    def project(self, label: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> ComposeProject:
        """A compose project of its own (name, loopback ports, log file) over the given files."""
        env = build_environment(
            self.service.docker_host, self.conf, f"ner{label}{os.getpid()}", free_port(), free_port()
        )
        return ComposeProject(
            env=env,
            conf=self.conf,
            log=ARTIFACTS / f"compose-{label}.log",
            gateway_port=int(env["NER_GATEWAY_PORT"]),
            consul_port=int(env["NER_CONSUL_UI_PORT"]),
            files=files,
        )

    @contextmanager
    def running(self, label: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> Iterator[ComposeProject]:
        """A project that is taken down with its volumes afterwards, whatever the tests did."""
        project = self.project(label, files)
        try:
            yield project
        finally:
            try:
                project.compose("down", "-v", "--remove-orphans", "-t", "30", timeout=300)
            except RuntimeError as error:  # keep the test's own failure the visible one
                print(error)


def start_engine(record_figure: Callable[[str, float], None]) -> ComposeEngine:
    """Stand-in bases, the wheelhouse, podman's API, and the worker and gateway images, once."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "engine.log"
    log.write_text("")
    conf = podman_tools.write_containers_conf(WORK)
    for name, seconds in ensure_standins(conf, ARTIFACTS / "standins.log").items():
        record_figure(f"compose_standin_{name}_build_s", seconds)
    record_figure("compose_wheelhouse_s", fill_wheelhouse(conf, log))
    engine = ComposeEngine(conf=conf, service=podman_tools.start_api_service(conf, ARTIFACTS))
    builder = engine.project("build")
    try:
        record_figure("compose_build_worker_s", builder.compose("build", "worker", timeout=1800))
        record_figure("compose_build_gateway_s", builder.compose("build", "gateway", timeout=900))
    except BaseException:
        engine.service.stop()
        raise
    return engine
