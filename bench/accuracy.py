"""Agreement and accuracy on the MSRA test split: reference pipeline vs onnx FP32 vs onnx INT8.

    .venv/bin/python -m bench.accuracy MODEL_DIR [--limit N] [--no-reference]

Prints the share of sentences whose entities are identical to the reference
(`raner` backend, one sentence per pipeline call) for FP32 and INT8, and
entity-level F1 (exact type and span) against the gold tags for each path.
Acceptance: FP32 identical for >= 99.9 % of sentences; INT8 F1 within 0.5
points of FP32 on a trained model (random-weight models give meaningless F1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

from tests.support.msra import read_split  # noqa: E402


def f1(gold: list[set], predicted: list[set]) -> tuple[float, float, float]:
    """Micro precision, recall and F1 over (type, start, end) triples."""
    hits = sum(len(g & p) for g, p in zip(gold, predicted))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if hits else 0.0)


def triples(entities) -> set:
    return {(e.type, e.start, e.end) for e in entities}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) ModelScope pipeline")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".local" / "cache")
    args = parser.parse_args(argv)

    from worker.backends.fast import FastBackend

    data = read_split()[: args.limit]
    texts = [text for text, _ in data]
    gold = [set(entities) for _, entities in data]
    results: dict[str, list[set]] = {}
    for quantize in ("fp32", "int8"):
        backend = FastBackend.from_directory(args.model_dir, cache_dir=args.cache_dir, quantize=quantize)
        started = time.perf_counter()
        results[f"onnx {quantize}"] = [triples(e) for e in backend.predict_batch(texts)]
        print(f"onnx {quantize}: {len(texts) / (time.perf_counter() - started):.0f} sentences/s", flush=True)
        backend.close()
    if not args.no_reference:
        from worker.backends.raner import RanerBackend

        reference = RanerBackend.from_directory(args.model_dir)
        started = time.perf_counter()
        results["reference"] = [triples(reference.predict_batch([text])[0]) for text in texts]
        print(f"reference: {len(texts) / (time.perf_counter() - started):.0f} sentences/s", flush=True)
    print(f"\n{len(texts)} MSRA test sentences, model {args.model_dir}")
    for path, predicted in results.items():
        precision, recall, score = f1(gold, predicted)
        line = f"  {path:<10} P {precision:.4f}  R {recall:.4f}  F1 {score:.4f}"
        if "reference" in results and path != "reference":
            same = sum(a == b for a, b in zip(results["reference"], predicted))
            line += f"  identical to reference: {same}/{len(texts)} ({100 * same / len(texts):.2f} %)"
        print(line)
    fp32, int8 = f1(gold, results["onnx fp32"])[2], f1(gold, results["onnx int8"])[2]
    print(f"  INT8 - FP32 F1: {100 * (int8 - fp32):+.2f} points (budget: -0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
