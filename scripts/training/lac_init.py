"""Start a model from LAC's pretrained network: its characters as the vocabulary, its rows and BiGRU weights."""

from __future__ import annotations

import numpy as np
import torch

from scripts.training.lac import GruWeights, LacNetwork
from scripts.training.vocab import ALWAYS_KEPT, PAD_ID, SPECIAL_TOKENS
from worker.textnorm import bert_canonical

INIT_PARTS = ("embedding", "encoder", "encoder+head")
# LAC's tags for each entity type (its tag.dic gives nr/ns/nt the ids of PER/LOC/ORG).
LAC_TYPES = {"PER": ("PER",), "LOC": ("LOC",), "ORG": ("ORG",)}


def lac_vocab(net: LacNetwork) -> tuple[list[str], list[int | None]]:
    """Tokens as the served tokenizer sees them, and the LAC row each one starts from.

    LAC's single characters come first (its own order), then characters LAC maps to
    one of them (full-width forms, traditional characters) with that character's row,
    so no preprocessing step is needed at serving time. [PAD] starts at zero and the
    other special tokens and never-seen characters at LAC's OOV row.
    """
    oov = net.char_to_id["OOV"]
    vocab, rows = list(SPECIAL_TOKENS), [None if i == PAD_ID else oov for i in range(len(SPECIAL_TOKENS))]
    seen = set(vocab)

    def add(char: str, row: int) -> None:
        canonical = bert_canonical(char)
        if len(canonical) == 1 and not canonical.isspace() and canonical not in seen:
            seen.add(canonical)
            vocab.append(canonical)
            rows.append(row)

    singles = sorted((i, token) for token, i in net.char_to_id.items() if len(token) == 1)
    exact = {token: i for i, token in singles}
    for i, token in singles:
        add(token, exact.get(bert_canonical(token), i))  # "A" and "a" share the lower-case row
    for source, target in sorted(net.q2b.items()):
        if target in net.char_to_id:
            add(source, net.char_to_id[target])
    for char in ALWAYS_KEPT:
        add(char, oov)
    return vocab, rows


def _copy(parameter: torch.nn.Parameter, value: np.ndarray) -> None:
    if tuple(parameter.shape) != value.shape:
        raise ValueError(f"shape {tuple(parameter.shape)} cannot take LAC's {value.shape}")
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _copy_gru(gru: torch.nn.Module, weights: GruWeights) -> None:
    _copy(gru.input_projection.weight, weights.input_weight.T)  # Paddle's fc is x @ W, torch's x @ W.T
    _copy(gru.input_projection.bias, weights.input_bias)
    _copy(gru.recurrent_gates, weights.recurrent_gates)
    _copy(gru.recurrent_candidate, weights.recurrent_candidate)


def embedding_of(model: torch.nn.Module) -> torch.nn.Embedding:
    """The character embedding of an lstm-crf or bigru-crf model as ModelScope builds it."""
    backbone = model.encoder
    return backbone.encoder.embedding if hasattr(backbone, "encoder") else backbone.embedding.embedding


def _head_rows(net: LacNetwork, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Emission rows for BIES labels from LAC's B/I tags: B and S from X-B, I and E from X-I, O from the rest."""
    index = {tag: i for i, tag in enumerate(net.tags)}
    entity_tags = {f"{tag}-{part}" for tags in LAC_TYPES.values() for tag in tags for part in "BI"}
    other = [i for tag, i in index.items() if tag not in entity_tags]
    weights, biases = [], []
    for label in labels:
        prefix, _, kind = label.partition("-")
        columns = (
            other if label == "O" else [index[f"{tag}-{'B' if prefix in 'BS' else 'I'}"] for tag in LAC_TYPES[kind]]
        )
        weights.append(net.emission_weight[:, columns].mean(axis=1))
        biases.append(net.emission_bias[columns].mean())
    return np.stack(weights), np.array(biases, dtype=np.float32)


def init_from_lac(
    model: torch.nn.Module, net: LacNetwork, rows: list[int | None], part: str, labels: list[str] | None = None
) -> None:
    """Copy LAC's embedding rows (part="embedding"), its BiGRU layers too (part="encoder"), and its
    emission layer's entity rows as the new linear layer's starting point (part="encoder+head")."""
    if part not in INIT_PARTS:
        raise ValueError(f"init part must be one of {INIT_PARTS}, got {part!r}")
    embedding = embedding_of(model)
    table = np.stack([np.zeros(net.embedding.shape[1], np.float32) if r is None else net.embedding[r] for r in rows])
    _copy(embedding.weight, table)
    if part.startswith("encoder"):
        layers = model.encoder.encoder.layers
        if len(layers) != len(net.layers):
            raise ValueError(f"{len(layers)} BiGRU layers cannot take LAC's {len(net.layers)}")
        for layer, (forward, backward) in zip(layers, net.layers):
            _copy_gru(layer.forward_gru, forward)
            _copy_gru(layer.backward_gru, backward)
    if part == "encoder+head":
        weight, bias = _head_rows(net, labels)
        _copy(model.head.ffn.weight, weight)
        _copy(model.head.ffn.bias, bias)
