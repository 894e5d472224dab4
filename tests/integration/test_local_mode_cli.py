"""The operator's commands for local mode (what `make up/status/scale/down` run), end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.localcluster import LocalCluster, load_config, pid_alive, port_is_free
from scripts.localmode.procs import pids_under
from scripts.ports import WORKER_PORT_BLOCK
from tests.integration.conftest import world_readable_dir
from tests.support.processes import REPO_ROOT, free_port, free_port_block

CLI = [sys.executable, "-m", "scripts.cluster"]


@pytest.fixture(scope="module")
def local_env() -> dict[str, str]:
    run_dir = world_readable_dir("ner-cli-")
    env = {
        **os.environ,
        "NER_RUN_DIR": str(run_dir),
        "NER_GATEWAY_LISTEN": f"127.0.0.1:{free_port()}",
        "NER_CONSUL_HTTP_PORT": str(free_port()),
        "NER_WORKER_BASE_PORT": str(free_port_block(WORKER_PORT_BLOCK)),
        "NER_DRAIN_SECONDS": "1",
    }
    yield env
    subprocess.run(CLI + ["down"], env=env, cwd=REPO_ROOT, capture_output=True, timeout=120)
    shutil.rmtree(run_dir, ignore_errors=True)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(CLI + list(args), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def recorded_pids(env: dict[str, str]) -> list[int]:
    """The pids of every program the cluster's supervisor runs now."""
    return [proc.pid for proc in LocalCluster(load_config(env)).live().values()]


def test_up_prints_the_gateway_and_consul_ui_urls_and_serves(local_env):
    result = run(local_env, "up", "--workers", "1")
    gateway = "http://" + local_env["NER_GATEWAY_LISTEN"]
    assert gateway in result.stderr
    assert f"http://127.0.0.1:{local_env['NER_CONSUL_HTTP_PORT']}/ui/" in result.stderr
    assert "renderer" in result.stderr  # says which renderer keeps the upstream
    assert requests.post(gateway + "/v1/ner", json={"text": "张三"}, timeout=10).status_code == 200
    ui = requests.get(f"http://127.0.0.1:{local_env['NER_CONSUL_HTTP_PORT']}/ui/", timeout=10)
    assert ui.status_code == 200 and "consul" in ui.text.lower()


def test_status_lists_each_worker_with_address_health_and_model(local_env):
    result = run(local_env, "status")
    lines = [line for line in result.stdout.splitlines() if line.startswith("ner-worker-")]
    assert len(lines) == 1
    assert "passing" in lines[0] and "lac-msra-lstm@" in lines[0] and "127.0.0.1:" in lines[0]


def test_scale_grows_and_shrinks_without_restarting_the_others(local_env):
    before = set(recorded_pids(local_env))
    run(local_env, "scale", "2")
    grown = set(recorded_pids(local_env))
    assert before < grown
    run(local_env, "scale", "0")
    assert set(recorded_pids(local_env)) < grown
    gateway = "http://" + local_env["NER_GATEWAY_LISTEN"]
    response = requests.post(gateway + "/v1/ner", json={"text": "张三"}, timeout=10)
    assert response.status_code == 503 and response.json()["title"]
    run(local_env, "scale", "1")
    assert requests.post(gateway + "/v1/ner", json={"text": "张三"}, timeout=10).status_code == 200


def test_down_leaves_nothing_running_and_frees_the_ports(local_env):
    pids = recorded_pids(local_env)
    assert pids
    run(local_env, "down")
    assert not any(pid_alive(pid) for pid in pids)
    run_dir = local_env["NER_RUN_DIR"]
    leftovers = subprocess.run(["pgrep", "-f", run_dir], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    assert pids_under(Path(run_dir)) == []
    assert port_is_free(int(local_env["NER_GATEWAY_LISTEN"].rsplit(":", 1)[1]))
    assert port_is_free(int(local_env["NER_CONSUL_HTTP_PORT"]))
