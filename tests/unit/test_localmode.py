"""Local mode's pieces without a running cluster: program files, the launcher, process identity."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.localmode.config import REPO_ROOT, load_config
from scripts.localmode.launch import choose_port, clear_leftovers, wait_ports_free
from scripts.localmode.listeners import take_listeners
from scripts.localmode.procs import listeners, pid_alive, pids_under
from scripts.localmode.programs import Program
from scripts.localmode.status import restarts, uptime
from scripts.localmode.supervisor import Supervisor
from scripts.localmode.workers import gunicorn_argv, ports_in, worker_ports, worker_program
from scripts.ports import free_port

PYTHON = Path(sys.executable)


@pytest.fixture
def config(tmp_path: Path):
    return replace(load_config({}), run_dir=tmp_path / "run", drain_seconds=3.0)


def sleeper(cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["sleep", "30"], cwd=cwd)


def listener_child(port: int) -> subprocess.Popen:
    """A process that listens on port and never accepts (the kernel queues connections)."""
    code = (
        "import socket, time\n"
        f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port}))\n"
        "s.listen(16); print('ready', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    return child


def test_a_program_section_restarts_it_and_stops_it_with_its_own_signal_and_timeout(config):
    program = Program(
        name="nginx", argv=["nginx", "-p", "/x"], priority=20, stop_signal="QUIT", stop_wait_seconds=10, ports=(8080,)
    )
    section = program.section(PYTHON, config.run_dir)
    lines = section.splitlines()
    assert lines[0] == "[program:nginx]"
    for expected in (
        "autorestart=true",
        "stopsignal=QUIT",
        "stopwaitsecs=10",
        "killasgroup=true",
        f"directory={config.run_dir / 'work' / 'nginx'}",
        "stdout_logfile_backups=3",
    ):
        assert expected in lines, section
    command = next(line for line in lines if line.startswith("command="))
    assert "scripts.localmode.launch" in command and "--port 8080" in command and command.endswith("-- nginx -p /x")


def test_percent_signs_are_escaped_for_supervisord_and_quotes_refused(config):
    program = Program(name="x", argv=["echo", "100%"], priority=1, env={"A": "50%"})
    section = program.section(PYTHON, config.run_dir)
    assert "100%%" in section and 'A="50%%"' in section
    with pytest.raises(ValueError):
        Program(name="y", argv=["echo"], priority=1, env={"A": 'say "hi"'}).section(PYTHON, config.run_dir)


def test_a_worker_reads_its_token_from_the_secret_file_so_no_token_is_in_the_supervisor_files(config):
    token_file = config.run_dir / "secrets" / "worker.token"
    section = worker_program(config, 1, worker_ports(config, 1), token_file).section(PYTHON, config.run_dir)
    assert f"--token-file {token_file}" in section
    assert "CONSUL_HTTP_TOKEN" not in section


def test_a_worker_runs_gunicorn_from_its_own_directory_with_the_project_root_on_pythonpath(config):
    section = worker_program(config, 1, worker_ports(config, 1), None).section(PYTHON, config.run_dir)
    assert shlex.join(gunicorn_argv(config.python, "worker-1")) in section
    assert f'PYTHONPATH="{REPO_ROOT}"' in section
    assert f"directory={config.run_dir / 'work' / 'worker-1'}" in section


def test_each_worker_has_two_ports_of_its_own(config):
    ports = [worker_ports(config, index) for index in (1, 2, 3)]
    assert ports[0] == (config.worker_base_port, config.worker_base_port + 1)
    assert len({port for pair in ports for port in pair}) == 6


def test_a_workers_ports_are_read_back_from_its_program_file(config, tmp_path):
    path = tmp_path / "worker-2.conf"
    path.write_text(worker_program(config, 2, worker_ports(config, 2), None).section(PYTHON, config.run_dir))
    assert ports_in(path) == worker_ports(config, 2)
    assert ports_in(tmp_path / "gone.conf") == ()


def test_a_workers_stop_timeout_covers_its_drain_and_gunicorns_graceful_stop(config):
    program = worker_program(config, 1, worker_ports(config, 1), None)
    assert program.stop_signal == "TERM"
    assert program.stop_wait_seconds >= config.drain_seconds + 30
    assert program.leftover_signal == "KILL"


def test_a_restart_takes_the_other_port(tmp_path):
    last = tmp_path / "port"
    first, second = free_port(), free_port()
    assert choose_port([first, second], last) == first
    assert choose_port([first, second], last) == second
    assert choose_port([first, second], last) == first


def test_a_restart_keeps_a_port_when_the_other_is_taken(tmp_path):
    last = tmp_path / "port"
    first, second = free_port(), free_port()
    last.write_text(f"{first}\n")
    holder = listener_child(second)
    try:
        assert choose_port([first, second], last) == first
    finally:
        holder.kill()
        holder.wait()


def test_processes_are_the_clusters_by_their_working_directory(tmp_path):
    inside, outside = sleeper(tmp_path / "run" / "work" / "a"), sleeper(tmp_path / "elsewhere")
    try:
        found = pids_under(tmp_path / "run" / "work")
        assert inside.pid in found and outside.pid not in found
    finally:
        for child in (inside, outside):
            child.kill()
            child.wait()


def test_leftovers_in_the_programs_directory_are_stopped_and_nothing_else(tmp_path):
    leftover, stranger = sleeper(tmp_path / "work" / "nginx"), sleeper(tmp_path / "other")
    try:
        stopped = clear_leftovers(tmp_path / "work" / "nginx", signal.SIGTERM, timeout=5)
        assert stopped == [leftover.pid]
        assert leftover.wait(timeout=5) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for child in (leftover, stranger):
            child.kill()
            child.wait()


def test_the_holder_of_a_listening_port_is_found(tmp_path):
    port = free_port()
    holder = listener_child(port)
    try:
        assert listeners(port) == [holder.pid]
        assert wait_ports_free([port], timeout=0.2) == [port]
    finally:
        holder.kill()
        holder.wait()
    assert wait_ports_free([port], timeout=5) == []


def test_a_taken_over_listening_socket_keeps_accepting_after_its_holder_is_gone():
    port = free_port()
    holder = listener_child(port)
    try:
        [fd] = take_listeners([holder.pid], [port])
    finally:
        holder.kill()
        holder.wait()
    taken = socket.socket(fileno=fd)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            conn, _ = taken.accept()
            conn.close()
    finally:
        taken.close()


def test_a_stale_supervisor_pid_file_naming_another_process_is_not_trusted(tmp_path):
    supervisor = Supervisor(tmp_path, PYTHON)
    supervisor.dir.mkdir(parents=True)
    stranger = sleeper(tmp_path / "x")
    try:
        supervisor.pid_path.write_text(f"{stranger.pid}\n")
        assert supervisor.daemon_pid() is None
        assert supervisor.answering() is False
    finally:
        stranger.kill()
        stranger.wait()
    assert not pid_alive(stranger.pid)


def test_restarts_are_the_starts_after_the_first(config):
    class Cluster:
        pass

    cluster = Cluster()
    cluster.config = config
    starts = config.run_dir / "supervisor" / "starts" / "nginx"
    starts.parent.mkdir(parents=True)
    assert restarts(cluster, "nginx") == 0
    starts.write_text(f"{time.time()}\n{time.time()}\n{time.time()}\n")
    assert restarts(cluster, "nginx") == 2


def test_uptime_reads_as_hours_minutes_seconds():
    assert uptime(3725.9) == "1:02:05"
