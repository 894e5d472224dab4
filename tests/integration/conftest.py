"""A real local cluster (Consul, gunicorn workers, renderer, nginx) shared by the cluster tests."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import pytest

from scripts.localcluster import LocalCluster, load_config
from tests.support.processes import REPO_ROOT, free_port

ARTIFACTS = REPO_ROOT / "test-artifacts"
DEFAULT_MODEL = REPO_ROOT / ".local" / "models" / "raner-tiny-random"


def cluster_config(run_dir: Path):
    """Free ports for everything, so tests never collide with a running `make up` cluster."""
    return replace(
        load_config(os.environ),
        run_dir=run_dir,
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        consul_http_port=free_port(),
        worker_base_port=free_port(),
        model_dir=DEFAULT_MODEL,
        drain_seconds=2.0,
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Consul + 2 workers + renderer + nginx, started once for the session."""
    local = LocalCluster(cluster_config(tmp_path_factory.mktemp("cluster")), say=lambda message: None)
    try:
        local.up(2)
        yield local
    finally:
        local.down()


@pytest.fixture
def two_workers(cluster: LocalCluster) -> LocalCluster:
    """The shared cluster with Consul up and exactly two healthy workers, whatever the last test did."""
    cluster.up(2)
    cluster.scale(2)
    cluster.wait_gateway_serving()
    return cluster


@pytest.fixture(scope="session")
def record_figure() -> Callable[[str, float], None]:
    """Keep a measured figure (seconds, counts) in test-artifacts/figures.jsonl for the docs."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "figures.jsonl"

    def record(name: str, value: float) -> None:
        with open(path, "a") as out:
            out.write(json.dumps({"figure": name, "value": round(value, 3)}) + "\n")
        print(f"figure {name} = {value:.3f}")

    return record
