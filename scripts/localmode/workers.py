"""Worker instances of the local cluster: one supervised gunicorn program each, on ports of its own."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from scripts.localmode.config import REPO_ROOT, ClusterConfig
from scripts.localmode.programs import Program, program_dir

PRIORITY = 100
PREFIX = "worker-"
PORTS_PER_WORKER = 2  # a restarted worker takes the other one (launch.choose_port)
# gunicorn's graceful stop after the registrar's drain (worker/gunicorn.conf.py graceful_timeout),
# plus the drain's wait for the gateway to drop the instance: what the supervisor allows after SIGTERM.
GRACEFUL_SECONDS = 30
UPSTREAM_WAIT_SECONDS = 5
GUNICORN_CONF = REPO_ROOT / "worker" / "gunicorn.conf.py"


@dataclass(frozen=True)
class WorkerModel:
    """The model a worker program serves: its directory, and the name and version it registers
    (None: the directory's name and the weights' checksum, worker/modelinfo.py)."""

    model_dir: Path
    name: str | None = None
    version: str | None = None

    def env(self) -> dict[str, str]:
        env = {"NER_MODEL_DIR": str(self.model_dir)}
        if self.name:
            env["NER_MODEL_NAME"] = self.name
        if self.version:
            env["NER_MODEL_VERSION"] = self.version
        return env

    def ref(self) -> str:
        """name@version, as the worker will register and answer it."""
        from worker.modelinfo import model_identity

        name, version = model_identity(self.model_dir, self.name, self.version)
        return f"{name}@{version}"

    def to_json(self) -> str:
        return json.dumps({"model_dir": str(self.model_dir), "name": self.name, "version": self.version})

    @classmethod
    def from_json(cls, text: str) -> "WorkerModel":
        data = json.loads(text)
        return cls(Path(data["model_dir"]), data.get("name"), data.get("version"))


def is_worker(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX) :].isdigit()


def index_of(name: str) -> int:
    return int(name[len(PREFIX) :])


def worker_ports(config: ClusterConfig, index: int) -> tuple[int, ...]:
    """worker-N's ports: two consecutive ones from NER_WORKER_BASE_PORT on."""
    first = config.worker_base_port + PORTS_PER_WORKER * (index - 1)
    return tuple(range(first, first + PORTS_PER_WORKER))


def gunicorn_argv(python: Path, name: str) -> list[str]:
    """One worker instance's command, to run with the project root on PYTHONPATH; `ner-NAME` names it in ps."""
    return [str(python), "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--name", f"ner-{name}", "worker.app:get_app()"]


def worker_program(
    config: ClusterConfig,
    index: int,
    ports: tuple[int, ...],
    token_file: Path | None,
    model: WorkerModel | None = None,
) -> Program:
    """worker-N: gunicorn, which registers itself in Consul and drains itself on SIGTERM."""
    name = f"{PREFIX}{index}"
    env = {
        **(model or WorkerModel(config.model_dir)).env(),
        "CONSUL_HTTP_ADDR": f"127.0.0.1:{config.consul_http_port}",
        "NER_DRAIN_SECONDS": f"{config.drain_seconds:g}",
        "PROMETHEUS_MULTIPROC_DIR": str(config.run_dir / "metrics" / name),
    }
    # No --chdir: gunicorn stays in the program's directory, which marks its processes as ours
    # (procs.py); PYTHONPATH (programs.py) makes `worker` importable from there.
    argv = gunicorn_argv(config.python, name)
    # Leftovers are the workers of a master that was killed: they no longer answer for their
    # instance, and a graceful stop leaves requests on idle keep-alive connections unanswered.
    # Killed at once, whatever they had in flight fails before a byte was sent and nginx retries it
    # on another worker (every response leaves in one write: worker/whole_response.py).
    return Program(
        name=name,
        argv=argv,
        priority=PRIORITY,
        stop_signal="TERM",
        leftover_signal="KILL",
        stop_wait_seconds=config.drain_seconds + UPSTREAM_WAIT_SECONDS + GRACEFUL_SECONDS,
        env=env,
        token_file=token_file,
        bind_ports=ports,
    )


_BIND_PORT = re.compile(r"--bind-port=(\d+)")


def ports_in(program_file: Path) -> tuple[int, ...]:
    """The ports a worker program was configured with (none once its file is gone)."""
    try:
        return tuple(int(port) for port in _BIND_PORT.findall(program_file.read_text()))
    except OSError:
        return ()


def current_port(run_dir: Path, name: str) -> int:
    """The port the worker's current (or last) start listens on; 0 before its first start."""
    try:
        return int((program_dir(run_dir, name) / "port").read_text().strip())
    except (OSError, ValueError):
        return 0
