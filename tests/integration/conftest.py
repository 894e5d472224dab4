"""A real local cluster (Consul, gunicorn workers, renderer, nginx) shared by the cluster tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from scripts.localcluster import LocalCluster, load_config, on_free_ports
from tests.support.consul import ConsulAgent, start_consul
from tests.support.processes import REPO_ROOT

DEFAULT_MODEL = REPO_ROOT / "models" / "lac-msra-lstm"


def cluster_config(run_dir: Path):
    """The default model and a short drain, on ports of its own."""
    return replace(on_free_ports(load_config(os.environ)), run_dir=run_dir, model_dir=DEFAULT_MODEL, drain_seconds=2.0)


def world_readable_dir(prefix: str) -> Path:
    """A run directory nginx's unprivileged worker processes can enter (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextmanager
def started_cluster(prefix: str, workers: int = 2) -> Iterator[LocalCluster]:
    """A cluster in a run directory of its own, up for the with-block and down (and removed) after."""
    run_dir = world_readable_dir(prefix)
    local = LocalCluster(cluster_config(run_dir), say=lambda message: None)
    try:
        local.up(workers)
        yield local
    finally:
        local.down()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """Consul + 2 workers + renderer + nginx, started once for the session."""
    with started_cluster("ner-cluster-") as local:
        yield local


@pytest.fixture
def two_workers(cluster: LocalCluster) -> LocalCluster:
    """The shared cluster with Consul up and exactly two healthy workers, whatever the last test did."""
    cluster.up(2)
    cluster.scale(2)
    cluster.wait_gateway_serving()
    return cluster


@pytest.fixture(scope="session")
def consul_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulAgent]:
    """One Consul dev agent on free ports, started once for every test that needs Consul alone."""
    agent = start_consul(tmp_path_factory.mktemp("consul"))
    try:
        yield agent
    finally:
        agent.process.stop()


@pytest.fixture
def consul(consul_agent: ConsulAgent) -> Iterator[ConsulAgent]:
    """The shared agent, emptied after each test of the services and keys the test left."""
    yield consul_agent
    consul_agent.clear()


@pytest.fixture
def private_consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A Consul agent of the test's own, for tests that stop or restart it."""
    agent = start_consul(tmp_path / "private-consul", name="private")
    try:
        yield agent
    finally:
        agent.process.stop()
