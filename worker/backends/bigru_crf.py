"""The bigru-crf model type: LAC's stacked character BiGRU + a CRF head, registered with ModelScope.

ModelScope's own lstm-crf type is one BiLSTM layer; this type stacks GRU layers
with the exact cell of Baidu's LAC (the reset gate applied to the state before
its matrix, as ONNX's GRU with linear_before_reset=0), so pretrained LAC weights
transfer unchanged. `register()` must run before ModelScope builds a pipeline
or model from a directory whose configuration.json names `bigru-crf`; the real
RaNER directories do not depend on it.
"""

from __future__ import annotations

import torch
from torch import nn

MODEL_TYPE = "bigru-crf"
BACKBONE_TYPE = "lac-bigru"
PREPROCESSOR_TYPE = "char-labeling-tokenizer"


class LacGru(nn.Module):
    """The weights of one direction of one layer, in LAC's layout (BiGruLayer runs them).

    u, r = sigmoid(x W_x[u, r] + h W_g + b[u, r]); c = tanh(x W_x[c] + (r * h) W_c + b[c]);
    h' = h + u * (c - h).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_projection = nn.Linear(input_size, 3 * hidden_size)  # rows: update, reset, candidate
        self.recurrent_gates = nn.Parameter(torch.zeros(hidden_size, 2 * hidden_size))
        self.recurrent_candidate = nn.Parameter(torch.zeros(hidden_size, hidden_size))


class BiGruLayer(nn.Module):
    """A forward and a backward LacGru over the same input, concatenated.

    Both directions advance in one loop (batched matrix products), the backward one over the
    input flipped in time. Where `mask` is 0 (padding) a state is held, so padding at the
    end, which the flipped direction reads first, leaves every real position's result exact.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.forward_gru = LacGru(input_size, hidden_size)
        self.backward_gru = LacGru(input_size, hidden_size)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden, steps = self.forward_gru.hidden_size, inputs.shape[1]
        directions = (self.forward_gru, self.backward_gru)
        flipped = inputs.flip(1)
        projected = torch.stack([gru.input_projection(x) for gru, x in zip(directions, (inputs, flipped))])
        gate_inputs, candidate_inputs = projected[..., : 2 * hidden], projected[..., 2 * hidden :]
        recurrent_gates = torch.stack([gru.recurrent_gates for gru in directions])
        recurrent_candidate = torch.stack([gru.recurrent_candidate for gru in directions])
        masks = None if mask is None else torch.stack([mask, mask.flip(1)])[..., None]
        state = inputs.new_zeros(2, inputs.shape[0], hidden)
        outputs = []
        for t in range(steps):
            gates = torch.sigmoid(torch.baddbmm(gate_inputs[:, :, t], state, recurrent_gates))
            update, reset = gates[..., :hidden], gates[..., hidden:]
            candidate = torch.tanh(torch.baddbmm(candidate_inputs[:, :, t], reset * state, recurrent_candidate))
            new_state = state + update * (candidate - state)
            state = new_state if masks is None else torch.where(masks[:, :, t], new_state, state)
            outputs.append(state)
        states = torch.stack(outputs, dim=2)  # (direction, batch, time, hidden)
        return torch.cat([states[0], states[1].flip(1)], dim=-1)


class BiGruEncoder(nn.Module):
    """Character embedding, then `num_layers` BiGRU layers; hidden states of width 2 * hidden_size."""

    def __init__(self, vocab_size: int, embed_width: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_width)
        sizes = [embed_width] + [2 * hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(BiGruLayer(size, hidden_size) for size in sizes)

    def encode(self, embedded: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states of already embedded characters (training applies dropout in between)."""
        hidden = embedded
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden


_registered = False


def register() -> None:
    """Add the backbone, model and preprocessor types to ModelScope's registries (idempotent)."""
    global _registered
    if _registered:
        return
    from modelscope.models import TorchModel
    from modelscope.models.builder import MODELS
    from modelscope.models.nlp.lstm import LSTMForTokenClassificationWithCRF
    from modelscope.outputs import BackboneModelOutput
    from modelscope.preprocessors.builder import PREPROCESSORS
    from modelscope.preprocessors.nlp.token_classification_preprocessor import (
        TokenClassificationTransformersPreprocessor,
    )
    from modelscope.utils.constant import Fields, Tasks

    @MODELS.register_module(group_key=Tasks.backbone, module_name=BACKBONE_TYPE)
    class LacBiGruModel(TorchModel):
        """The backbone as ModelScope builds it from configuration.json's model.backbone."""

        def __init__(self, vocab_size: int, embed_width: int, lstm_hidden_size: int, num_layers: int = 2, **kwargs):
            super().__init__()
            self.encoder = BiGruEncoder(vocab_size, embed_width, lstm_hidden_size, num_layers)

        def forward(self, input_ids, attention_mask=None, **kwargs) -> BackboneModelOutput:
            mask = None if attention_mask is None else attention_mask.bool()
            hidden = self.encoder.encode(self.encoder.embedding(input_ids), mask)
            return BackboneModelOutput(last_hidden_state=hidden)

    @MODELS.register_module(Tasks.named_entity_recognition, module_name=MODEL_TYPE)
    @MODELS.register_module(Tasks.token_classification, module_name=MODEL_TYPE)
    class BiGruForTokenClassificationWithCRF(LSTMForTokenClassificationWithCRF):
        """ModelScope's lstm-crf model (its CRF head, decoding and outputs) over the BiGRU backbone."""

        base_model_type = BACKBONE_TYPE

    @PREPROCESSORS.register_module(Fields.nlp, module_name=PREPROCESSOR_TYPE)
    class CharLabelingPreprocessor(TokenClassificationTransformersPreprocessor):
        """The lstm-crf tokenisation (one token per character, no [CLS]/[SEP]) for any model type."""

        def __init__(self, model_dir: str | None = None, *args, **kwargs):
            super().__init__(model_dir, *args, **kwargs)
            self.is_lstm_model = True
            self.nlp_tokenizer.model_type = "lstm"
            self.nlp_tokenizer.tokenize_kwargs["add_special_tokens"] = False

    _registered = True
