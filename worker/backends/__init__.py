"""Backend factory: the one place that knows which backend kinds exist."""

from __future__ import annotations

from pathlib import Path

from worker.backends.base import BackendError, NerBackend

__all__ = ["BackendError", "NerBackend", "BACKEND_KINDS", "load_backend"]

BACKEND_KINDS = ("raner",)


def load_backend(
    kind: str,
    model_dir: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    torch_threads: int = 1,
) -> NerBackend:
    """Build the backend of the given kind from a local model directory."""
    if kind == "raner":
        # Imported here so importing the package does not pull in torch/ModelScope.
        from worker.backends.raner import RanerBackend

        return RanerBackend.from_directory(
            Path(model_dir), name=name, version=version, torch_threads=torch_threads
        )
    raise ValueError(f"unknown NER backend {kind!r}; known backends: {', '.join(BACKEND_KINDS)}")
