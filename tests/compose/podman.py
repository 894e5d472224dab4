"""podman as a Docker engine for tests: runc + cgroupfs config, the API socket, and CLI calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tests.support.processes import ManagedProcess, wait_until

# runc (crun is not installed), cgroupfs (no systemd here), and ulimits high enough for
# gunicorn, nginx and Consul; podman's own defaults assume systemd and crun.
CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


def available() -> str | None:
    """None when podman, runc and docker-compose are all installed, else what is missing."""
    missing = [tool for tool in ("podman", "runc", "docker-compose") if shutil.which(tool) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def write_containers_conf(directory: Path) -> Path:
    """The CONTAINERS_CONF file every podman call of the tests uses."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "containers.conf"
    path.write_text(CONTAINERS_CONF)
    return path


def podman_env(conf: Path) -> dict[str, str]:
    """Environment for podman commands run by the tests."""
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(
    conf: Path, *args: str, timeout: float = 120, check: bool = True, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess:
    """Run one podman command with the test configuration; output captured as text."""
    result = subprocess.run(
        ["podman", *args], env=podman_env(conf), capture_output=True, timeout=timeout, input=input_bytes
    )
    stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    completed = subprocess.CompletedProcess(result.args, result.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}):\n{stderr[-3000:]}")
    return completed


def image_exists(conf: Path, tag: str) -> bool:
    return podman(conf, "image", "exists", tag, check=False).returncode == 0


@dataclass
class ApiService:
    """`podman system service` on a private unix socket: the Docker API for docker-compose."""

    process: ManagedProcess
    socket_path: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        self.process.stop(timeout=10)


def start_api_service(conf: Path, workdir: Path) -> ApiService:
    """Start the API service and wait until it answers /_ping."""
    socket_dir = Path(tempfile.mkdtemp(prefix="ner-podman-"))
    socket_path = socket_dir / "podman.sock"
    process = ManagedProcess(
        name="podman-service",
        argv=["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
        log_path=workdir / "podman-service.log",
        env=podman_env(conf),
    ).start()
    service = ApiService(process=process, socket_path=socket_path)

    def pinged() -> bool:
        result = subprocess.run(
            ["curl", "-sf", "--unix-socket", str(socket_path), "http://d/_ping"], capture_output=True, timeout=5
        )
        return result.returncode == 0

    wait_until(pinged, 30, describe="podman API socket", on_timeout=process.log_tail)
    return service


def run_logged(
    argv: Sequence[str], env: dict[str, str], log: Path, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a long command (image build, compose) with its output appended to a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.run(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd)
