"""What a RaNER-format directory says about itself, read without torch or ModelScope."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from worker.backends.base import BackendError
from worker.modelinfo import WEIGHTS_FILE

KINDS = ("transformer-crf", "lstm-crf", "bigru-crf")
# Kinds fed one token per character with no [CLS]/[SEP], whose CRF head decodes the first n
# positions, and whose backward recurrence is run over each sequence reversed (reverse_index).
CHARACTER_KINDS = ("lstm-crf", "bigru-crf")
# Files whose content decides the exported graph; any change makes a new artifact.
_KEY_FILES = (WEIGHTS_FILE, "configuration.json", "config.json")


def local_model_dir(model_dir: Path, required: tuple[str, ...]) -> Path:
    """The directory as an absolute path (ModelScope takes a relative "a/b" for a hub id and goes
    online), once it holds the files a backend needs."""
    model_dir = Path(model_dir).expanduser().resolve()
    for name in required:
        if not (model_dir / name).is_file():
            raise BackendError(f"{model_dir} is not a RaNER model directory: {name} missing")
    return model_dir


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_kind(model_dir: Path) -> str:
    """One of KINDS, from configuration.json's model.type."""
    model = _read_json(Path(model_dir) / "configuration.json").get("model", {})
    kind = model.get("type") if isinstance(model, dict) else None
    if kind not in KINDS:
        raise ValueError(f"{model_dir}: model type {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def label_names(model_dir: Path) -> list[str]:
    """Label of each tag id, found where ModelScope's parse_label_mapping looks, in its order."""
    model_dir = Path(model_dir)
    label2id = _read_json(model_dir / "label_mapping.json") or None
    if label2id is None:
        configuration = _read_json(model_dir / "configuration.json")
        for section in ("model", "preprocessor"):
            part = configuration.get(section)
            if not isinstance(part, dict):
                continue
            if "label2id" in part:
                label2id = part["label2id"]
            elif "id2label" in part:
                label2id = {label: index for index, label in part["id2label"].items()}
            if label2id is not None:
                break
    if label2id is None:
        config = _read_json(model_dir / "config.json")
        if "label2id" in config:
            label2id = config["label2id"]
        elif "id2label" in config:
            label2id = {label: index for index, label in config["id2label"].items()}
    if not label2id:
        raise ValueError(f"{model_dir}: no label mapping found")
    id2label = {int(index): label for label, index in label2id.items()}
    return [id2label[index] for index in range(len(id2label))]


def content_key(model_dir: Path) -> str:
    """sha256 over the weights and configs: names an export that is valid exactly for them."""
    digest = hashlib.sha256()
    for name in _KEY_FILES:
        path = Path(model_dir) / name
        digest.update(name.encode() + b"\0")
        if path.is_file():
            with open(path, "rb") as data:
                for block in iter(lambda: data.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
