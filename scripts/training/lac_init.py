"""Start a model from LAC's pretrained network: its characters as the vocabulary, its rows and BiGRU weights."""

from __future__ import annotations

import numpy as np
import torch

from scripts.training.lac import GruWeights, LacNetwork
from scripts.training.vocab import ALWAYS_KEPT, PAD_ID, SPECIAL_TOKENS
from worker.textnorm import bert_canonical

INIT_PARTS = ("embedding", "encoder")


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


def init_from_lac(model: torch.nn.Module, net: LacNetwork, rows: list[int | None], part: str) -> None:
    """Copy LAC's embedding rows (part="embedding"), and its BiGRU layers too (part="encoder")."""
    if part not in INIT_PARTS:
        raise ValueError(f"init part must be one of {INIT_PARTS}, got {part!r}")
    embedding = embedding_of(model)
    table = np.stack([np.zeros(net.embedding.shape[1], np.float32) if r is None else net.embedding[r] for r in rows])
    _copy(embedding.weight, table)
    if part == "encoder":
        layers = model.encoder.encoder.layers
        if len(layers) != len(net.layers):
            raise ValueError(f"{len(layers)} BiGRU layers cannot take LAC's {len(net.layers)}")
        for layer, (forward, backward) in zip(layers, net.layers):
            _copy_gru(layer.forward_gru, forward)
            _copy_gru(layer.backward_gru, backward)
