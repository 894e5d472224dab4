"""The torch modules traced to ONNX: a model's encoder up to its per-token emission scores."""

from __future__ import annotations

import torch


def emission_graph(kind: str, model):
    """The module to trace, example inputs, input names and dynamic axes for a model kind."""
    ids = torch.tensor([[2, 5, 3, 0], [2, 5, 6, 3]], dtype=torch.long)
    batch_axes = {0: "batch", 1: "tokens"}
    if kind == "lstm-crf":
        reverse = torch.tensor([[2, 1, 0, 3], [3, 2, 1, 0]], dtype=torch.long)
        names = ["input_ids", "reverse_index"]
        return _LstmEmissions(model), (ids, reverse), names, {**{n: batch_axes for n in names}, "emissions": batch_axes}
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return (
        _TransformerEmissions(model),
        (ids, mask, torch.zeros_like(ids)),
        names,
        {**{n: batch_axes for n in names}, "emissions": batch_axes},
    )


class _TransformerEmissions(torch.nn.Module):
    """Encoder + the CRF head's linear layer: per-token emission scores."""

    def __init__(self, model) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.linear = model.head.linear

    def forward(self, input_ids, attention_mask, token_type_ids):
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        return self.linear(hidden)


class _LstmEmissions(torch.nn.Module):
    """Embedding + BiLSTM + linear, with the backward direction run on each sequence reversed.

    A bidirectional LSTM over right-padded batches lets padding leak into the
    backward direction. Running the backward weights as a forward LSTM over
    each sequence reversed within its own length (reverse_index) gives every
    sequence exactly its unpadded result, whatever it is batched with.
    """

    def __init__(self, model) -> None:
        super().__init__()
        lstm = model.encoder.lstm
        if lstm.num_layers != 1 or not lstm.bidirectional or not lstm.batch_first:
            raise ValueError("expected ModelScope's one-layer batch-first BiLSTM")
        self.embedding = model.encoder.embedding.embedding
        self.forward_lstm = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        self.backward_lstm = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        for target, suffix in ((self.forward_lstm, ""), (self.backward_lstm, "_reverse")):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(target, name).data.copy_(getattr(lstm, name + suffix).data)
        self.ffn = model.head.ffn

    def forward(self, input_ids, reverse_index):
        embedded = self.embedding(input_ids)
        forward_states, _ = self.forward_lstm(embedded)
        index = reverse_index.unsqueeze(-1)
        reversed_input = torch.gather(embedded, 1, index.expand(-1, -1, embedded.size(-1)))
        backward_reversed, _ = self.backward_lstm(reversed_input)
        backward_states = torch.gather(backward_reversed, 1, index.expand(-1, -1, backward_reversed.size(-1)))
        return self.ffn(torch.cat([forward_states, backward_states], dim=-1))
