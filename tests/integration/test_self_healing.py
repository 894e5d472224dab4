"""Local mode heals itself: every program of the cluster runs under supervisord (scripts/localmode/).

kill -9 of Consul, nginx's master, the renderer or a worker's gunicorn master under paced load
through the gateway: the program runs again, the cluster gets back its full shape, and a client
that resends on a reset keep-alive connection loses nothing. `down` right after leaves nothing,
and `up` right after works. Figures go to test-artifacts/figures.jsonl; `make heal` prints the
table of docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Iterator

import pytest
import requests

from bench.healing import PROGRAMS, kill_and_heal, kill_loop, program_name, wait_full_shape
from scripts.localcluster import LocalCluster
from scripts.localmode.procs import pid_alive, pids_under, port_listened
from tests.integration.conftest import started_cluster
from tests.support.processes import REPO_ROOT
from tests.support.waiting import wait_for

TEXT = {"text": "张三在北京的清华大学工作。"}


@pytest.fixture(scope="module")
def healing() -> Iterator[LocalCluster]:
    """A cluster of its own: these tests kill its programs and stop and start it again."""
    with started_cluster("ner-heal-") as local:
        yield local


@pytest.fixture
def whole(healing: LocalCluster) -> LocalCluster:
    """The cluster with every program running and two workers passing, whatever the last test did."""
    healing.up(2)
    healing.scale(2)
    wait_full_shape(healing, 2)
    return healing


def nothing_left(cluster: LocalCluster, ports: list[int]) -> list[str]:
    """What of the cluster still runs or listens (empty when down left nothing)."""
    left = [f"pid {pid}" for pid in pids_under(cluster.config.run_dir / "work")]
    daemon = cluster.supervisor.daemon_pid()
    if daemon is not None:
        left.append(f"supervisord {daemon}")
    return left + [f"port {port}" for port in ports if port_listened(port)]


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_program_killed_under_load_runs_again_and_the_cluster_is_whole_with_no_failed_request(
    whole, program, record_figure
):
    healed = kill_and_heal(whole, program)
    record_figure(f"heal.{program}.running_again_s", healed.running_again_s)
    record_figure(f"heal.{program}.serving_again_s", healed.serving_again_s)
    if healed.passing_again_s is not None:
        record_figure(f"heal.{program}.passing_again_s", healed.passing_again_s)
    record_figure(f"heal.{program}.whole_again_s", healed.whole_again_s)
    record_figure(f"heal.{program}.serving_gap_ms", healed.gap_ms)
    for kind in healed.requests:
        record_figure(f"heal.{program}.{kind}.requests", healed.requests[kind])
        record_figure(f"heal.{program}.{kind}.failed", healed.failed[kind])
    assert healed.requests["retrying"] > 50
    assert healed.failed["retrying"] == 0, "\n".join(["failed:", *healed.failures])


def test_after_nginx_master_is_killed_a_worker_started_later_gets_traffic(whole):
    master = whole.live()["nginx"].pid
    os.kill(master, signal.SIGKILL)
    wait_for(
        lambda: whole.live().get("nginx") is not None and whole.live()["nginx"].pid != master, 10, "nginx running again"
    )
    whole.wait_gateway_serving(timeout=10)
    new = whole.start_worker()
    wait_for(lambda: new.port in {s["Port"] for s in whole.passing()}, 30, "the new worker passing")
    new_id = next(s["ID"] for s in whole.passing() if s["Port"] == new.port)

    def served_by_new() -> bool:
        response = requests.post(f"{whole.config.gateway_url}/v1/ner", json=TEXT, timeout=5)
        return response.headers.get("X-Worker-Id") == new_id

    wait_for(served_by_new, 10, "traffic on the worker started after the restart", interval=0.02)
    assert not pid_alive(master)


def test_nginx_leftover_workers_of_a_killed_master_are_gone_after_the_restart(whole):
    master = whole.live()["nginx"].pid
    orphans = [int(pid) for pid in (open(f"/proc/{master}/task/{master}/children").read().split())]
    assert orphans
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(pid) for pid in orphans), 15, "the old nginx workers to exit")
    whole.wait_gateway_serving(timeout=10)


@pytest.mark.parametrize("program", [*PROGRAMS, "supervisord"])
def test_down_right_after_a_kill_leaves_nothing_and_up_right_after_serves(whole, program):
    ports = whole.cluster_ports()
    pid = whole.supervisor.daemon_pid() if program == "supervisord" else whole.live()[program_name(program)].pid
    os.kill(pid, signal.SIGKILL)
    whole.down()
    assert nothing_left(whole, ports) == []
    whole.up(2)
    assert requests.post(f"{whole.config.gateway_url}/v1/ner", json=TEXT, timeout=10).status_code == 200


def test_up_after_the_supervisor_itself_was_killed_takes_over_without_duplicates(whole):
    os.kill(whole.supervisor.daemon_pid(), signal.SIGKILL)
    whole.up(2)
    wait_full_shape(whole, 2)
    masters = [
        pid
        for pid in pids_under(whole.config.run_dir / "work" / "nginx")
        if open(f"/proc/{pid}/cmdline").read().startswith("nginx: master")
    ]
    assert len(masters) == 1
    assert len(whole.workers()) == 2


def test_down_never_signals_a_process_the_cluster_did_not_start(whole, tmp_path):
    stranger = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        whole.supervisor.pid_path.write_text(f"{stranger.pid}\n")  # a stale pid file, its pid reused
        whole.down()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_twenty_random_kills_over_two_minutes_lose_no_request_and_down_leaves_nothing(whole, record_figure):
    result = kill_loop(whole, kills=20, seconds=100)
    record_figure("heal.loop.kills", len(result.kills))
    record_figure("heal.loop.whole_again_s", result.whole_again_s)
    for kind in result.requests:
        record_figure(f"heal.loop.{kind}.requests", result.requests[kind])
        record_figure(f"heal.loop.{kind}.failed", result.failed[kind])
    assert len(result.kills) == 20
    assert result.failed["retrying"] == 0, "\n".join(["failed:", *result.failures, "kills:", *result.timeline])
    ports = whole.cluster_ports()
    whole.down()
    assert nothing_left(whole, ports) == []


def test_status_piped_into_a_reader_that_went_away_exits_cleanly(cluster):
    env = {
        **os.environ,
        "NER_RUN_DIR": str(cluster.config.run_dir),
        "NER_CONSUL_HTTP_PORT": str(cluster.config.consul_http_port),
        "NER_GATEWAY_LISTEN": f"127.0.0.1:{cluster.config.gateway_port}",
        "NER_WORKER_BASE_PORT": str(cluster.config.worker_base_port),
    }
    status = subprocess.Popen(
        [sys.executable, "-m", "scripts.cluster", "status"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    status.stdout.close()  # like `| head` that has already exited: every write gets EPIPE
    _, stderr = status.communicate(timeout=60)
    assert status.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr.decode()


def test_status_shows_state_uptime_and_restarts_of_every_program(whole, capsys):
    victim = whole.live()["renderer"].pid
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (state := whole.supervisor.state("renderer")) is not None and state.running and state.pid != victim,
        10,
        "renderer RUNNING again",
    )  # RUNNING one second after it started
    whole.print_status()
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in ("consul", "nginx", "renderer", "worker-1", "worker-2"):
        assert lines[name][1] == "RUNNING", lines
    assert int(lines["renderer"][4]) >= 1
