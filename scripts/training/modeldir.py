"""The files of an lstm-crf model directory that ModelScope's NER pipeline loads unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.make_model import tokenizer_config_json

CONFIG_FILES = ("configuration.json", "config.json", "tokenizer_config.json", "vocab.txt")
WEIGHTS_FILE = "pytorch_model.bin"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def backbone_config(
    vocab_size: int, embed_width: int, lstm_hidden_size: int, model_type: str = "lstm-crf", num_layers: int = 1
) -> dict[str, Any]:
    """lstm-crf: ModelScope's one-layer BiLSTM; bigru-crf: the stacked LAC BiGRU (worker/backends/bigru_crf.py)."""
    backbone = {"vocab_size": vocab_size, "embed_width": embed_width, "lstm_hidden_size": lstm_hidden_size}
    if model_type == "lstm-crf":
        return {"type": "lstm", **backbone}
    from worker.backends.bigru_crf import BACKBONE_TYPE

    return {"type": BACKBONE_TYPE, **backbone, "num_layers": num_layers}


def configuration_json(labels: list[str], backbone: dict[str, Any]) -> dict[str, Any]:
    """ModelScope's configuration.json.

    `model.backbone.type: lstm` makes the preprocessor skip [CLS]/[SEP] whatever the directory is
    called (it otherwise decides by looking for "lstm" in the path, and the LSTM head does not
    skip them, so every label would shift by one). `is_split_into_words` gives every character its
    own token: the LSTM head labels the first N tokens, so a digit run tokenised as one word with
    word pieces would shift all labels after it.
    """
    from worker.backends.bigru_crf import MODEL_TYPE, PREPROCESSOR_TYPE

    lstm = backbone["type"] == "lstm"
    return {
        "framework": "pytorch",
        "task": "named-entity-recognition",
        "model": {"type": "lstm-crf" if lstm else MODEL_TYPE, "backbone": backbone},
        "pipeline": {"type": "named-entity-recognition"},
        # bigru-crf: its own registered preprocessor does the lstm tokenisation (no [CLS]/[SEP]).
        "preprocessor": {
            "type": "sequence-labeling-tokenizer" if lstm else PREPROCESSOR_TYPE,
            "is_split_into_words": True,
        },
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def config_json(labels: list[str], backbone: dict[str, Any]) -> dict[str, Any]:
    """config.json: the head reads lstm_hidden_size and the label maps from here."""
    return {
        "model_type": backbone["type"],
        "vocab_size": backbone["vocab_size"],
        "embed_width": backbone["embed_width"],
        "lstm_hidden_size": backbone["lstm_hidden_size"],
        "num_labels": len(labels),
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def write_config_files(
    model_dir: Path,
    labels: list[str],
    vocab: list[str],
    embed_width: int,
    lstm_hidden_size: int,
    model_type: str = "lstm-crf",
    num_layers: int = 1,
) -> dict[str, Any]:
    """Everything but the weights; returns the backbone config the model is built from."""
    model_dir.mkdir(parents=True, exist_ok=True)
    backbone = backbone_config(len(vocab), embed_width, lstm_hidden_size, model_type, num_layers)
    _write_json(model_dir / "configuration.json", configuration_json(labels, backbone))
    _write_json(model_dir / "config.json", config_json(labels, backbone))
    _write_json(model_dir / "tokenizer_config.json", tokenizer_config_json())
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return backbone


def build_model(model_dir: Path, num_labels: int, backbone: dict[str, Any]):
    """The exact ModelScope class the pipeline builds, so weight names match by construction."""
    from modelscope.models.builder import MODELS
    from modelscope.utils.constant import Tasks

    from worker.backends.bigru_crf import MODEL_TYPE, register

    register()
    model_type = "lstm-crf" if backbone["type"] == "lstm" else MODEL_TYPE
    model_class = MODELS.get(model_type, group_key=Tasks.named_entity_recognition)
    return model_class(str(model_dir), num_labels=num_labels, backbone=dict(backbone))
