"""gunicorn settings for a NER worker instance: `gunicorn -c worker/gunicorn.conf.py 'worker.app:get_app()'`."""

# This file is executed by the gunicorn master at start-up (and again on SIGHUP).
# Settings come from the same NER_* variables as the app, validated by load_config().
# `worker` and `registrar` import from the project root: the working directory (gunicorn puts
# it on the import path) or PYTHONPATH (the image, local mode and the tests set it).
import atexit
import os
import shutil
import tempfile
from pathlib import Path

# --- Prometheus multiprocess mode ---------------------------------------------------
# Each process writes its metrics to files in one directory and /metrics merges them.
# prometheus_client picks its storage when first imported, so the variable must be set
# here, in the master, before anything imports it and before the workers fork.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="ner-metrics-")  # new, so empty
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
    _master_pid = os.getpid()
    # Forked workers inherit this exit handler; only the master removes the directory.
    atexit.register(lambda: os.getpid() == _master_pid and shutil.rmtree(_metrics_dir, ignore_errors=True))
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
# Files left by an earlier run would be counted as ours: clear them once per master
# process (not on a SIGHUP reload, when live workers still write to them).
if os.environ.get("_NER_METRICS_DIR_OWNER_PID") != str(os.getpid()):
    for _leftover in Path(_metrics_dir).glob("*.db"):
        _leftover.unlink(missing_ok=True)
    os.environ["_NER_METRICS_DIR_OWNER_PID"] = str(os.getpid())

# --- Consul registration --------------------------------------------------------------
# on_starting sets NER_INSTANCE_ID before the workers fork; when_ready registers the
# instance once gunicorn has bound its port and makes SIGTERM drain it out of Consul
# before the workers stop; on_exit deregisters it.
from registrar.hooks import on_exit, on_starting, when_ready  # noqa: E402,F401
from worker.config import load_config  # noqa: E402  (light: reads the environment only)
from worker.modelinfo import model_identity  # noqa: E402  (light: hashes the weights file)

_config = load_config()

# --- Model identity -------------------------------------------------------------------
# Resolved once here, in the master, and exported: the workers report it as "model" and
# the registrar puts the same name and version into the Consul service's tags and meta.
if _config.model_dir.is_dir():
    _name, _version = model_identity(_config.model_dir, _config.model_name, _config.model_version)
    os.environ["NER_MODEL_NAME"], os.environ["NER_MODEL_VERSION"] = _name, _version

# --- Serving --------------------------------------------------------------------------
# Each response leaves in one send (head and body together), so a worker killed mid-response
# has sent all of it or nothing, and nginx can retry "nothing" on another worker.
from worker.whole_response import install as send_whole_responses  # noqa: E402

send_whole_responses()
bind = [_config.bind]
workers = _config.processes
# gthread: the main loop accepts connections and hands each ready request to a pool of
# `threads` threads, which runs it from start to end; a request waiting in the app's
# admission queue (worker/admission.py) keeps its thread. Connections beyond the threads
# wait in the pool's own queue, unseen by the app and not bound by the queue deadline,
# and a /health check would wait behind them. So threads (NER_THREADS, default 160)
# cover the admission queue (NER_MAX_QUEUE, 128) plus the requests in the model and a
# margin for /health, /metrics and quick refusals: 128 concurrent connections per process
# each have a thread. Threads start on demand and an idle one costs little memory (its
# stack is reserved, not touched); bench/worker_concurrency.py measures RSS at 8-128
# connections.
worker_class = "gthread"
threads = _config.threads
# Connections one process holds open (busy and kept-alive): bounds memory beyond the
# threads; more wait in the listen backlog until one closes.
worker_connections = max(1000, 2 * threads)

# The model loads in each worker after fork (get_app() runs post-fork); never preload:
# torch state and thread pools do not survive fork well, and each process needs its own.
preload_app = False

# A gthread worker heartbeats from its main loop, which starts only after get_app() has
# loaded the model. The timeout must therefore cover importing the ML stack and loading
# the weights (tens of seconds for a base-size model on a busy machine), not just a request.
timeout = 120
# On SIGTERM the registrar drains the instance (out of Consul, then NER_DRAIN_SECONDS
# of serving); after that, in-flight requests get this long to finish before SIGKILL.
graceful_timeout = 30
# Behind nginx with keep-alive upstream connections: keep idle connections a little
# longer than nginx would, so nginx never reuses a connection we just closed.
keepalive = 75

# Heartbeat files in memory rather than on a possibly slow or disk-backed /tmp.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's control socket has one default path per user: several instances on one
# host (local mode, tests) would fight over it. Operators use signals and Consul instead.
control_socket_disable = True

# --- Logs -----------------------------------------------------------------------------
# The app logs one structured line per request; gunicorn's access log would duplicate it.
accesslog = None
errorlog = "-"
loglevel = "info"
# gunicorn's own lines (start, workers booting and exiting, timeouts) in the shape of every
# other line (registrar/logformat.py). A logger class rather than logconfig_dict: any
# logconfig_dict also turns gunicorn's access log on.
from gunicorn.glogging import Logger as _GunicornLogger  # noqa: E402

from registrar.logformat import formatter_for  # noqa: E402


class ClusterLogger(_GunicornLogger):
    """gunicorn's logger with the cluster's line format on its error log (stderr)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter_for(handler.stream))


logger_class = ClusterLogger


# A stopped worker process leaves without tearing down torch (about a second of CPU each):
# several workers stopping at once would otherwise starve the ones that stay.
from worker.process_exit import leave_now as worker_exit  # noqa: E402,F401


def child_exit(server, worker):
    """Drop the dead process's live gauges (in-flight requests) from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
