"""Model versions side by side in local mode: workers of a new version beside the old, promote, roll back.

The shares and the watch are registrar/rollout.py's (Consul's KV store); this module adds what only a
supervisor can do: start the new version's worker programs, and stop one version's programs (each
drains itself and deregisters on SIGTERM). The promoted model is recorded in RUN_DIR/model.json, so
`make scale` and `make up` start workers of it from then on (NER_MODEL_DIR until the first promote).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from registrar.client import build_client
from registrar.config import load_config as load_registrar_config
from registrar.rollout import DEFAULT_MAX_ERROR_RATIO, DEFAULT_MIN_REQUESTS, Rollout, WatchResult
from scripts.localmode.config import ClusterConfig
from scripts.localmode.programs import program_dir
from scripts.localmode.workers import WorkerModel

if TYPE_CHECKING:
    from scripts.localcluster import LocalCluster

MODEL_FILE = "model.json"
WORKER_MODEL_FILE = "model.json"


def current_model(config: ClusterConfig) -> WorkerModel:
    """The model new workers serve: the last promoted one, else NER_MODEL_DIR."""
    try:
        return WorkerModel.from_json((config.run_dir / MODEL_FILE).read_text())
    except (OSError, ValueError, KeyError):
        return WorkerModel(config.model_dir)


def record_current_model(config: ClusterConfig, model: WorkerModel) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / MODEL_FILE).write_text(model.to_json())


def record_worker_model(run_dir: Path, name: str, model: WorkerModel) -> None:
    """Which model a worker program serves, beside its port file."""
    directory = program_dir(run_dir, name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WORKER_MODEL_FILE).write_text(model.to_json())


def worker_model(config: ClusterConfig, name: str) -> WorkerModel:
    try:
        return WorkerModel.from_json((program_dir(config.run_dir, name) / WORKER_MODEL_FILE).read_text())
    except (OSError, ValueError, KeyError):
        return WorkerModel(config.model_dir)


@dataclass
class LocalRollout:
    """Rollout, promote and roll back on a local cluster."""

    cluster: "LocalCluster"
    say: Callable[[str], None]

    def registrar_rollout(self) -> Rollout:
        """registrar's Rollout against this cluster's Consul, with the operator's token in secure mode."""
        cluster = self.cluster
        environ = {
            **os.environ,
            "CONSUL_HTTP_ADDR": f"127.0.0.1:{cluster.config.consul_http_port}",
            **cluster.token_env("operator"),
            **cluster.mode.consul_client_env(),
        }
        config = load_registrar_config(environ)
        return Rollout(config, build_client(config), say=self.say)

    def workers_of(self, ref: str) -> list[str]:
        """Configured worker programs that serve ref."""
        return [n for n in self.cluster.configured_workers() if worker_model(self.cluster.config, n).ref() == ref]

    def workers_not_of(self, ref: str) -> list[str]:
        return [n for n in self.cluster.configured_workers() if worker_model(self.cluster.config, n).ref() != ref]

    def stop(self, names: list[str]) -> None:
        """Stop these programs at once; each drains (maintenance, in-flight finished) and deregisters."""
        if not names:
            return
        self.say(f"stopping {', '.join(names)} (each drains and deregisters)")
        timeout = self.cluster._stop_timeout()
        stuck = self.cluster.supervisor.remove(names, timeout)
        if stuck:
            raise RuntimeError(f"{', '.join(stuck)} did not stop in {timeout:.0f}s")

    def rollout(
        self,
        model: WorkerModel,
        canary: float,
        workers: int = 1,
        watch: float = 60.0,
        max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO,
        min_requests: int = DEFAULT_MIN_REQUESTS,
    ) -> WatchResult | None:
        """Workers of the model beside the others, the canary share, and the watch (None: no watch)."""
        ref = model.ref()
        running = len(self.cluster.configured_workers())
        for _ in range(workers - len(self.workers_of(ref))):
            proc = self.cluster.start_worker(model)
            self.say(f"{proc.name}: starting {ref} on 127.0.0.1:{proc.port}")
        total = max(running, len(self.cluster.configured_workers()))
        took = self.cluster.wait_workers_passing(total)
        self.say(f"workers: {total} passing after {took:.1f}s ({len(self.workers_of(ref))} of {ref})")
        rollout = self.registrar_rollout()
        rollout.canary(ref, canary)
        if watch <= 0:
            return None
        result = rollout.watch(ref, watch, max_error_ratio, min_requests)
        if result.rolled_back:
            self.stop(self.workers_of(ref))
        return result

    def promote(self, ref: str | None = None) -> str:
        """Every request to the version, then stop the other versions' workers; new workers serve it."""
        ref = self.registrar_rollout().promote(ref)
        keep = self.workers_of(ref)
        if not keep:
            raise RuntimeError(f"no worker program of this cluster serves {ref}")
        record_current_model(self.cluster.config, worker_model(self.cluster.config, keep[0]))
        self.stop(self.workers_not_of(ref))
        return ref

    def rollback(self, ref: str | None = None) -> str:
        """No request to the version, then stop its workers."""
        ref = self.registrar_rollout().rollback(ref)
        self.stop(self.workers_of(ref))
        return ref
