"""A model's identity (name and version), cheap to compute: no torch, no ModelScope."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS_FILE = "pytorch_model.bin"


def weights_version(model_dir: Path) -> str:
    """First 12 hex digits of the weights' sha256: changes exactly when the model does."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS_FILE, "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def model_identity(model_dir: Path, name: str | None = None, version: str | None = None) -> tuple[str, str]:
    """(name, version): given values win, else the directory name and the weights' checksum."""
    return name or Path(model_dir).resolve().name, version or weights_version(model_dir)
