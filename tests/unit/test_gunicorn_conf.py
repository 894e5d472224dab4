"""worker/gunicorn.conf.py: settings from NER_* variables and the metrics directory it prepares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF = REPO_ROOT / "worker" / "gunicorn.conf.py"

_LOAD = textwrap.dedent("""
    import json, os, runpy, sys
    ns = runpy.run_path(sys.argv[1])
    keys = ["bind", "workers", "worker_class", "threads", "worker_connections", "preload_app",
            "timeout", "graceful_timeout", "accesslog"]
    out = {k: ns[k] for k in keys}
    out["hooks"] = sorted(k for k in ("on_starting", "when_ready", "on_exit", "child_exit", "worker_exit")
                          if callable(ns.get(k)))
    out["metrics_dir"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    from gunicorn.http import wsgi
    out["response_class"] = wsgi.Response.__name__
    print(json.dumps(out))
""")


def run_conf(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """script with the config file's path, in a fresh interpreter elsewhere, the project root on
    PYTHONPATH as the image, local mode and the tests start gunicorn."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NER_", "_NER_", "PROMETHEUS_MULTIPROC_DIR"))}
    clean.update({"PYTHONPATH": str(REPO_ROOT), "NER_REGISTER": "0", **env})
    return subprocess.run(
        [sys.executable, "-c", script, str(CONF)], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60
    )


def load_conf(tmp_path: Path, **env: str) -> dict:
    """Run the config file as the gunicorn master would; the settings it leaves."""
    done = run_conf(_LOAD, tmp_path, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_settings_come_from_ner_variables(tmp_path):
    conf = load_conf(
        tmp_path,
        NER_BIND="0.0.0.0:9123",
        NER_PROCESSES="3",
        NER_THREADS="6",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"),
    )
    assert conf["bind"] == ["0.0.0.0:9123"]
    assert (conf["workers"], conf["worker_class"], conf["threads"]) == (3, "gthread", 6)


def test_by_default_a_process_has_a_thread_for_each_of_128_connections_and_the_health_check(tmp_path):
    conf = load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 128 + 16 + 1  # the queue, a batch in the model, /health


def test_open_connections_are_bounded_and_leave_room_beyond_the_threads(tmp_path):
    conf = load_conf(tmp_path, NER_THREADS="600", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert conf["worker_connections"] >= 2 * 600
    assert load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))["worker_connections"] <= 1000


def test_model_loads_after_fork_never_preloaded(tmp_path):
    assert load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))["preload_app"] is False


def test_timeouts_leave_room_for_model_loading_and_draining(tmp_path):
    conf = load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert conf["timeout"] >= 60
    assert conf["graceful_timeout"] >= 10


def test_access_log_is_off_because_the_app_logs_requests(tmp_path):
    assert load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))["accesslog"] is None


def test_registrar_hooks_metrics_cleanup_and_the_quick_exit_are_installed(tmp_path):
    conf = load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert conf["hooks"] == ["child_exit", "on_exit", "on_starting", "when_ready", "worker_exit"]


def test_every_response_is_sent_whole(tmp_path):
    assert load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))["response_class"] == "WholeResponse"


def test_given_metrics_dir_is_created_and_cleared_of_an_earlier_run(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_123.db").write_bytes(b"stale")
    (metrics_dir / "keep.txt").write_text("not ours")
    load_conf(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    assert sorted(p.name for p in metrics_dir.iterdir()) == ["keep.txt"]


def test_a_metrics_dir_is_made_when_none_is_given(tmp_path):
    conf = load_conf(tmp_path)
    # The master removes its own directory when it exits (here: the interpreter).
    assert conf["metrics_dir"] and not Path(conf["metrics_dir"]).exists()


def test_bad_setting_fails_at_start_with_the_variable_named(tmp_path):
    done = run_conf(_LOAD, tmp_path, NER_THREADS="zero", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert done.returncode != 0
    assert "NER_THREADS" in done.stderr


_GUNICORN_LINE = textwrap.dedent("""
    import runpy, sys
    from gunicorn.config import Config
    ns = runpy.run_path(sys.argv[1])
    cfg = Config()
    for key in ("logger_class", "loglevel", "errorlog", "accesslog"):
        cfg.set(key, ns[key])
    log = cfg.logger_class(cfg)
    log.info("Booting worker with pid: %s", 4242)
    log.access(None, None, {}, None)  # what gunicorn calls after each request: nothing, the app logs it
""")


def test_gunicorns_own_lines_have_the_clusters_log_shape(tmp_path):
    done = run_conf(_GUNICORN_LINE, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    entry = json.loads(line)
    assert list(entry) == ["time", "level", "logger", "event"]
    assert (entry["level"], entry["logger"], entry["event"]) == (
        "INFO",
        "gunicorn.error",
        "Booting worker with pid: 4242",
    )
