"""Backend factory: the one place that knows which backend kinds exist."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worker.backends.base import BackendError, NerBackend

if TYPE_CHECKING:
    from worker.admission import AdmissionPolicy
    from worker.config import WorkerConfig

__all__ = ["BackendError", "NerBackend", "BACKEND_KINDS", "build_backend", "load_backend"]

BACKEND_KINDS = ("raner", "onnx")


def load_backend(
    kind: str,
    model_dir: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    torch_threads: int = 1,
    cache_dir: Path | None = None,
    quantize: str = "fp32",
    ort_threads: int | None = None,
    max_batch: int = 16,
    batch_wait_ms: float = 2.0,
    admission: AdmissionPolicy | None = None,
) -> NerBackend:
    """Build the backend of the given kind from a local model directory.

    admission: the onnx backend's batcher then is the admission queue (others are admitted
    by the HTTP layer's slot queue).
    """
    # Imported here so importing the package pulls in neither torch/ModelScope nor ONNX Runtime.
    if kind == "raner":
        from worker.backends.raner import RanerBackend

        return RanerBackend.from_directory(Path(model_dir), name=name, version=version, torch_threads=torch_threads)
    if kind == "onnx":
        from worker.backends.fast import FastBackend
        from worker.config import DEFAULT_CACHE_DIR

        return FastBackend.from_directory(
            Path(model_dir), name=name, version=version, quantize=quantize,
            cache_dir=Path(cache_dir or DEFAULT_CACHE_DIR), threads=ort_threads,
            max_batch=max_batch, batch_wait_ms=batch_wait_ms, torch_threads=torch_threads,
            admission=admission,
        )  # fmt: skip
    raise ValueError(f"unknown NER backend {kind!r}; known backends: {', '.join(BACKEND_KINDS)}")


def build_backend(config: WorkerConfig) -> NerBackend:
    """The backend a worker process serves: the configured kind, behind the result cache if enabled."""
    from worker.backends.fast import default_ort_threads

    # With a deadline of 0 every backend keeps the fixed slots of the HTTP layer (the old rule).
    admission = config.admission_policy() if config.queue_deadline_ms > 0 else None
    backend = load_backend(
        config.backend, config.model_dir, name=config.model_name, version=config.model_version,
        torch_threads=config.torch_threads, cache_dir=config.cache_dir, quantize=config.quantize,
        ort_threads=config.ort_threads or default_ort_threads(config.processes),
        max_batch=config.max_batch, batch_wait_ms=config.batch_wait_ms, admission=admission,
    )  # fmt: skip
    if config.result_cache_size <= 0 and not config.redis_url:
        return backend
    from worker.backends.cache import CachedBackend, RedisResults

    redis = RedisResults.from_url(config.redis_url, config.redis_ttl_seconds) if config.redis_url else None
    return CachedBackend(backend, config.result_cache_size, redis)
