"""Training-time view of ModelScope's LSTMForTokenClassificationWithCRF, and fixes applied before shipping."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from scripts.training.tags import OUTSIDE
from scripts.training.vocab import PAD_ID, UNK_ID

FORBIDDEN = -10000.0


class Tagger(nn.Module):
    """The served model's modules (embedding, BiLSTM or BiGRU encoder, linear, CRF) with dropout only training sees."""

    def __init__(self, model: nn.Module, embed_dropout: float, output_dropout: float, unk_rate: float) -> None:
        super().__init__()
        self.model = model
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.output_dropout = nn.Dropout(output_dropout)
        self.unk_rate = unk_rate

    def emissions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per-token label scores, the same computation as the pipeline's forward (plus dropout)."""
        if self.training and self.unk_rate > 0:
            # Teaches the [UNK] row what an unknown character looks like in context.
            drop = torch.rand(input_ids.shape) < self.unk_rate
            input_ids = input_ids.masked_fill(drop, UNK_ID)
        backbone = self.model.encoder
        if hasattr(backbone, "lstm"):  # lstm-crf
            hidden, _ = backbone.lstm(self.embed_dropout(backbone.embedding(input_ids)))
        else:  # bigru-crf
            hidden = backbone.encoder.encode(self.embed_dropout(backbone.encoder.embedding(input_ids)))
        return self.model.head.ffn(self.output_dropout(hidden))

    def loss(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sentence (the head's forward ignores labels)."""
        return -self.model.head.crf(self.emissions(input_ids), labels, reduction="mean")

    @torch.no_grad()
    def predict(self, input_ids: torch.Tensor) -> list[list[int]]:
        """Viterbi label ids for a batch of same-length sentences."""
        emissions = self.emissions(input_ids)
        mask = torch.ones(input_ids.shape, dtype=torch.bool)
        return self.model.head.crf.decode(emissions, mask).squeeze(0).reshape(input_ids.shape).tolist()


def _prefix(label: str) -> str:
    return label.split("-", 1)[0]


def _kind(label: str) -> str:
    return label.split("-", 1)[1] if "-" in label else ""


def allowed_transition(previous: str, current: str) -> bool:
    """BIES grammar: an open entity (B/I) must continue with I/E of its type; nothing else may."""
    if _prefix(previous) in ("B", "I"):
        return _prefix(current) in ("I", "E") and _kind(current) == _kind(previous)
    return current == OUTSIDE or _prefix(current) in ("B", "S")


def enforce_bies(crf: nn.Module, labels: list[str]) -> None:
    """Forbid impossible label sequences in the CRF, so decoding always yields whole entities."""
    with torch.no_grad():
        for i, previous in enumerate(labels):
            for j, current in enumerate(labels):
                if not allowed_transition(previous, current):
                    crf.transitions[i, j] = FORBIDDEN
        for i, label in enumerate(labels):
            if _prefix(label) in ("I", "E"):
                crf.start_transitions[i] = FORBIDDEN
            if _prefix(label) in ("B", "I"):
                crf.end_transitions[i] = FORBIDDEN


def tie_rows_to_unk(embedding: nn.Embedding, ids: Iterable[int]) -> None:
    """Rows of characters too rare to learn from get the trained [UNK] vector."""
    ids = list(ids)
    if ids:
        with torch.no_grad():
            embedding.weight[ids] = embedding.weight[UNK_ID].clone()


def neutralise_padding(model: nn.Module) -> float:
    """Make [PAD] leave the backward LSTM's state at exactly zero; returns the residual.

    The LSTM runs over the padding that batched prediction adds after each text, and its
    backward direction reads that padding first. With zero state, h = o*tanh(c) stays 0 and
    c = f*c + i*g stays 0 when the cell input g = tanh(W_ig x + b_ig + b_hg) is 0, so a [PAD]
    embedding solving W_ig x = -(b_ig + b_hg) makes padded and unpadded predictions identical.
    """
    lstm = model.encoder.lstm
    hidden = lstm.hidden_size
    cell = slice(2 * hidden, 3 * hidden)  # PyTorch gate order: input, forget, cell (g), output
    weight = lstm.weight_ih_l0_reverse[cell].detach().double()
    bias = (lstm.bias_ih_l0_reverse[cell] + lstm.bias_hh_l0_reverse[cell]).detach().double()
    solution = torch.linalg.lstsq(weight, -bias.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    with torch.no_grad():
        model.encoder.embedding.embedding.weight[PAD_ID] = solution.float()
    return float((weight @ solution + bias).abs().max())
