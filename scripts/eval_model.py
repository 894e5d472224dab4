"""Entity-level P/R/F1 of a model directory on the MSRA test split, through the serving backend.

Usage:
    python -m scripts.eval_model [MODEL_DIR] [--backend raner] [--limit N] [--batch-size N]

The last line printed is exactly `F1 0.xxxx` (overall, exact span and type).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from scripts.training import msra  # noqa: E402
from scripts.training.evaluation import evaluate_backend  # noqa: E402
from scripts.training.metrics import format_table  # noqa: E402

DEFAULT_MODEL_DIR = REPO / "models" / "raner-msra-lstm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--backend", default="raner")
    parser.add_argument("--data-dir", type=Path, default=msra.DEFAULT_DATA_DIR)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)

    from worker.backends import load_backend

    sentences = msra.read_sentences(msra.fetch(args.data_dir)["test"])
    if args.limit:
        sentences = sentences[: args.limit]
    backend = load_backend(args.backend, args.model_dir, torch_threads=args.threads)
    started = time.monotonic()
    scores = evaluate_backend(backend, sentences, args.batch_size)
    seconds = time.monotonic() - started
    print(f"model {backend.name}@{backend.version}, {len(sentences)} MSRA test sentences, {seconds:.0f}s")
    print(format_table(scores))
    print(f"F1 {scores['ALL'].f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
