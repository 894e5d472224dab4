"""Worker settings, read from NER_* environment variables into one frozen object."""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from worker.admission import AdmissionPolicy

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "lac-msra-lstm"
DEFAULT_CACHE_DIR = REPO_ROOT / ".local" / "cache"
QUANTIZE_MODES = ("fp32", "int8")

# Admission (worker/admission.py). A request waits for the model at most the queue deadline.
# The gateway retries a 429 on another worker, up to 3 tries within 5 s
# (proxy_next_upstream_tries / proxy_next_upstream_timeout): 3 x 500 ms of waiting plus the
# inference itself (milliseconds for a sentence, well under a second for the longest text)
# stays far inside those 5 s, while 500 ms of queue is hundreds of requests' worth of
# forward passes at the default model's speed, so ordinary bursts wait instead of failing.
DEFAULT_QUEUE_DEADLINE_MS = 500.0
MAX_QUEUE_DEADLINE_MS = 60_000.0  # nginx's proxy_read_timeout: a longer wait is never answered
# Waiting requests per process. Each one holds a gunicorn thread while it waits (gthread
# runs a request on its thread from start to end), so threads are sized from it.
DEFAULT_MAX_QUEUE = 128
# Requests in the model at once for backends that do not batch (raner), and the fixed
# limit of the earlier rule (NER_QUEUE_DEADLINE_MS=0: no free slot means an immediate 429).
DEFAULT_MAX_INFLIGHT = 3
# Threads per process: the whole queue, plus requests in the model (a batch holds up to
# NER_MAX_BATCH of them), plus room for /health, /metrics and answering refusals.
DEFAULT_THREADS = DEFAULT_MAX_QUEUE + 32


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs, so nothing else reads the environment."""

    model_dir: Path = DEFAULT_MODEL_DIR
    model_name: str | None = None  # None: the backend uses the directory name
    model_version: str | None = None  # None: the backend derives it from the weights
    backend: str = "onnx"  # raner: the reference ModelScope pipeline; onnx gives its tags, faster
    max_text_chars: int = 20_000
    max_batch_texts: int = 64
    max_body_bytes: int = 2 * 1024 * 1024
    torch_threads: int = 1
    instance_id: str = "ner-worker-local"
    bind: str = "127.0.0.1:8000"
    processes: int = 1
    threads: int = DEFAULT_THREADS
    max_inflight: int = DEFAULT_MAX_INFLIGHT  # requests in a non-batching model at once per process
    queue_deadline_ms: float = DEFAULT_QUEUE_DEADLINE_MS  # longest wait to start; 0: no free slot → 429
    max_queue: int = DEFAULT_MAX_QUEUE  # requests waiting to start; one more → 429 at once
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR: shared metrics across processes
    # Consul checks every second; one probe per second is enough however many checks arrive.
    health_cache_seconds: float = 1.0
    # /health answers 429 ("warning") only after this many whole windows in a row refused
    # requests (at least this share of each window's): never for one refusal or one burst.
    saturation_window_seconds: float = 1.0
    saturation_windows: int = 3
    saturation_min_ratio: float = 0.05
    # The onnx backend: exported graphs are cached here, keyed by the weights' checksum.
    cache_dir: Path = DEFAULT_CACHE_DIR
    quantize: str = "fp32"  # fp32 gives the reference's tags; int8 is ~2-3x faster
    ort_threads: int | None = None  # None: cores // processes, so threads x processes <= cores
    max_batch: int = 16  # sequences one forward pass gathers from concurrent requests; 1 disables
    batch_wait_ms: float = 2.0  # longest wait for requests already on their way into a batch
    result_cache_size: int = 4096  # texts whose entities are kept in memory; 0 disables
    redis_url: str | None = None  # optional cache shared by all workers
    redis_ttl_seconds: int = 86_400

    def admission_policy(self) -> AdmissionPolicy:
        return AdmissionPolicy(self.queue_deadline_ms / 1000, self.max_queue)


def load_config(environ: Mapping[str, str] = os.environ) -> WorkerConfig:
    """Build the config once at start-up so a bad value fails fast with a clear message."""
    env = _Env(environ)
    threads = env.positive_int("NER_THREADS", DEFAULT_THREADS)
    bind = env.text("NER_BIND") or "127.0.0.1:8000"
    _check_bind(bind)
    metrics_dir = env.text("PROMETHEUS_MULTIPROC_DIR") or env.text("prometheus_multiproc_dir")
    deadline_ms = env.non_negative_float("NER_QUEUE_DEADLINE_MS", DEFAULT_QUEUE_DEADLINE_MS)
    if deadline_ms > MAX_QUEUE_DEADLINE_MS:
        raise ValueError(
            f"NER_QUEUE_DEADLINE_MS must be at most {MAX_QUEUE_DEADLINE_MS:.0f} (the gateway "
            f"stops waiting for a worker after 60 s), got {deadline_ms:g}"
        )
    return WorkerConfig(
        model_dir=Path(env.text("NER_MODEL_DIR") or DEFAULT_MODEL_DIR).expanduser().resolve(),
        model_name=env.text("NER_MODEL_NAME"),
        model_version=env.text("NER_MODEL_VERSION"),
        backend=env.text("NER_BACKEND") or "onnx",
        max_text_chars=env.positive_int("NER_MAX_TEXT_CHARS", 20_000),
        max_batch_texts=env.positive_int("NER_MAX_BATCH_TEXTS", 64),
        max_body_bytes=env.positive_int("NER_MAX_BODY_BYTES", 2 * 1024 * 1024),
        torch_threads=env.positive_int("NER_TORCH_THREADS", 1),
        instance_id=env.text("NER_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}",
        bind=bind,
        processes=env.positive_int("NER_PROCESSES", 1),
        threads=threads,
        # Leave one thread free so /health still answers while the others predict.
        max_inflight=env.positive_int("NER_MAX_INFLIGHT", min(DEFAULT_MAX_INFLIGHT, max(1, threads - 1))),
        queue_deadline_ms=deadline_ms,
        max_queue=env.positive_int("NER_MAX_QUEUE", DEFAULT_MAX_QUEUE),
        metrics_dir=Path(metrics_dir) if metrics_dir else None,
        cache_dir=Path(env.text("NER_CACHE_DIR") or _default_cache_dir()).expanduser().resolve(),
        quantize=env.choice("NER_QUANTIZE", QUANTIZE_MODES, "fp32"),
        ort_threads=env.positive_int("NER_ORT_THREADS", 0) or None,
        max_batch=env.positive_int("NER_MAX_BATCH", 16),
        batch_wait_ms=env.non_negative_float("NER_BATCH_WAIT_MS", 2.0),
        result_cache_size=env.non_negative_int("NER_RESULT_CACHE_SIZE", 4096),
        redis_url=env.text("NER_REDIS_URL"),
        redis_ttl_seconds=env.positive_int("NER_REDIS_TTL_SECONDS", 86_400),
    )


class _Env:
    """Typed access to the environment with error messages that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        """Empty or blank values count as unset, as they do in most shells' `VAR=` lines."""
        value = self._environ.get(name, "").strip()
        return value or None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def non_negative_int(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise ValueError(f"{name} must be a non-negative integer, got {raw!r}")
        return int(raw)

    def non_negative_float(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a non-negative number, got {raw!r}") from None
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a non-negative number, got {raw!r}")
        return value

    def positive_int(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {raw!r}")
        return value


def _default_cache_dir() -> Path:
    """The repository's .local/cache, or a temporary one where the code is read-only (a container image).

    The onnx backend exports its graph there at the first start; a read-only default must
    not stop a worker from starting, it only costs that export at every start.
    """
    existing = DEFAULT_CACHE_DIR
    while not existing.exists():
        existing = existing.parent
    if os.access(existing, os.W_OK | os.X_OK):
        return DEFAULT_CACHE_DIR
    return Path(tempfile.gettempdir()) / "ner-cache"


def _check_bind(bind: str) -> None:
    """Accept gunicorn's forms: HOST:PORT, [IPv6]:PORT, unix:PATH."""
    if bind.startswith("unix:"):
        if len(bind) == len("unix:"):
            raise ValueError("NER_BIND unix: needs a socket path")
        return
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"NER_BIND must look like HOST:PORT (port 0-65535), got {bind!r}")
