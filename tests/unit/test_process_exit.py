"""worker/process_exit.py: a stopped worker leaves with gunicorn's exit status, logs flushed, no teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker.process_exit import exit_code, leave_now

REPO_ROOT = Path(__file__).resolve().parents[2]

_WORKER_EXIT = textwrap.dedent("""
    import atexit, logging, sys
    from worker.process_exit import leave_now
    atexit.register(lambda: print("teardown ran", flush=True))
    logging.basicConfig(stream=sys.stderr, format="%(message)s")
    logging.getLogger().error("logged before leaving")
    print("buffered output", end="")
    try:
        sys.exit(int(sys.argv[1]))
    finally:  # where gunicorn's arbiter calls the worker_exit hook
        leave_now(None, None)
""")


def run_worker_exit(code: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WORKER_EXIT, str(code)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("code", [0, 3])
def test_the_process_exits_with_the_status_gunicorn_chose(code):
    assert run_worker_exit(code).returncode == code


def test_logs_and_buffered_output_are_flushed_before_leaving():
    done = run_worker_exit(0)
    assert "logged before leaving" in done.stderr
    assert "buffered output" in done.stdout


def test_the_interpreter_teardown_is_skipped():
    assert "teardown ran" not in run_worker_exit(0).stdout


def test_outside_a_system_exit_the_hook_does_nothing():
    leave_now(None, None)  # still here: no exception in flight, so no exit


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (4, 4), ("a message", 1)])
def test_exit_status_follows_the_interpreters_rules(code, status):
    assert exit_code(SystemExit(code)) == status
