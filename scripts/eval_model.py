"""Entity-level P/R/F1 of a model directory on the MSRA test split, through the serving backend.

Usage:
    python -m scripts.eval_model [MODEL_DIR] [--backend raner] [--limit N] [--batch-size N] [--update-card]

Besides P/R/F1 per type it prints recall on test mentions that never occur as entities in the
training split (unseen), the figure closest to how the model does on other text. --update-card
writes these scores into the directory's metrics.json and README.md. The last line printed is
exactly `F1 0.xxxx` (overall, exact span and type).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from scripts.training import modelcard, msra  # noqa: E402
from scripts.training.evaluation import novelty, predict_spans  # noqa: E402
from scripts.training.metrics import format_table, score_entities  # noqa: E402
from scripts.training.tags import spans_from_tags  # noqa: E402
from worker.config import DEFAULT_MODEL_DIR  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--backend", default="raner")
    parser.add_argument("--data-dir", type=Path, default=msra.DEFAULT_DATA_DIR)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--update-card", action="store_true", help="record the scores in metrics.json and README.md")
    args = parser.parse_args(argv)

    from worker.backends import load_backend

    splits = msra.fetch(args.data_dir)
    sentences = msra.read_sentences(splits["test"])
    if args.limit:
        sentences = sentences[: args.limit]
    backend = load_backend(args.backend, args.model_dir, torch_threads=args.threads)
    started = time.monotonic()
    predicted = predict_spans(backend, sentences, args.batch_size)
    seconds = time.monotonic() - started
    scores = score_entities([spans_from_tags(s.labels) for s in sentences], predicted)
    novel = novelty(msra.read_sentences(splits["train"]), sentences, predicted)
    print(f"model {backend.name}@{backend.version}, {len(sentences)} MSRA test sentences, {seconds:.0f}s")
    print(format_table(scores))
    print(
        f"recall on mentions seen in training {novel.seen_recall:.4f}, "
        f"unseen {novel.unseen_recall:.4f} ({novel.unseen_share:.1%} of mentions are unseen)"
    )
    if args.update_card:
        modelcard.update_scores(args.model_dir, scores, novel, len(sentences), seconds)
        print(f"updated {args.model_dir / 'metrics.json'} and its README.md")
    print(f"F1 {scores['ALL'].f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
