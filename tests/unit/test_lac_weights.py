"""Reading LAC's pretrained network without Paddle: tensor files, vocabulary, and its GRU equations in torch."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from scripts.training import lac
from scripts.training.lac_init import init_from_lac, lac_vocab
from scripts.training.vocab import PAD_ID, SPECIAL_TOKENS, UNK_ID
from worker.backends.bigru_crf import BiGruEncoder


def paddle_tensor_bytes(array: np.ndarray, data_type: int = 5) -> bytes:
    """A tensor as Paddle's save_persistables writes it (version, no LoD, TensorDesc, data)."""
    desc = bytes([0x08, data_type])
    for dim in array.shape:
        desc += b"\x10" + _varint(dim)
    header = struct.pack("<I", 0) + struct.pack("<Q", 0) + struct.pack("<I", 0) + struct.pack("<i", len(desc))
    return header + desc + array.astype("<f4").tobytes()


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def test_a_paddle_tensor_file_reads_back_with_its_shape_and_values(tmp_path):
    array = np.arange(300 * 2, dtype=np.float32).reshape(300, 2) / 7
    (tmp_path / "w").write_bytes(paddle_tensor_bytes(array))
    np.testing.assert_array_equal(lac.read_tensor(tmp_path / "w"), array)


def test_a_tensor_that_is_not_float32_is_refused(tmp_path):
    (tmp_path / "w").write_bytes(paddle_tensor_bytes(np.zeros((2, 2)), data_type=6))
    with pytest.raises(ValueError, match="FP32"):
        lac.read_tensor(tmp_path / "w")


def fake_network(hidden: int = lac.HIDDEN, layers: int = 2, seed: int = 0) -> lac.LacNetwork:
    rng = np.random.default_rng(seed)
    words = ["A", "a", "中", "国", "OOV", "中国"]

    def gru(inputs: int) -> lac.GruWeights:
        return lac.GruWeights(
            input_weight=rng.normal(0, 0.3, (inputs, 3 * hidden)).astype(np.float32),
            input_bias=rng.normal(0, 0.3, 3 * hidden).astype(np.float32),
            recurrent_gates=rng.normal(0, 0.3, (hidden, 2 * hidden)).astype(np.float32),
            recurrent_candidate=rng.normal(0, 0.3, (hidden, hidden)).astype(np.float32),
        )

    return lac.LacNetwork(
        char_to_id={word: i for i, word in enumerate(words)},
        q2b={"Ａ": "A", "國": "国"},
        tags=["O"],
        embedding=rng.normal(0, 1, (len(words), 8)).astype(np.float32),
        layers=[(gru(8 if k == 0 else 2 * hidden), gru(8 if k == 0 else 2 * hidden)) for k in range(layers)],
        emission_weight=np.zeros((2 * hidden, 1), np.float32),
        emission_bias=np.zeros(1, np.float32),
        crf=np.zeros((3, 1), np.float32),
    )


def test_vocabulary_takes_lac_characters_and_maps_their_other_forms_onto_their_rows():
    net = fake_network()
    vocab, rows = lac_vocab(net)
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    row = dict(zip(vocab, rows))
    assert row["a"] == net.char_to_id["a"]  # the tokenizer lower-cases "A"; both share one row
    assert row["國"] == row["国"] == net.char_to_id["国"]
    assert "中国" not in vocab  # words are not characters
    assert rows[PAD_ID] is None and rows[UNK_ID] == net.char_to_id["OOV"]


def lac_reference(net: lac.LacNetwork, ids: list[int]) -> np.ndarray:
    """LAC's own equations in numpy: h' = (1 - u) h + u c, the reset gate applied before W_c."""

    def direction(x: np.ndarray, w: lac.GruWeights, reverse: bool) -> np.ndarray:
        hidden = w.recurrent_candidate.shape[0]
        projected = x @ w.input_weight + w.input_bias
        state, out = np.zeros(hidden), np.zeros((len(x), hidden))
        for t in reversed(range(len(x))) if reverse else range(len(x)):
            gates = 1 / (1 + np.exp(-(projected[t, : 2 * hidden] + state @ w.recurrent_gates)))
            update, reset = gates[:hidden], gates[hidden:]
            candidate = np.tanh(projected[t, 2 * hidden :] + (reset * state) @ w.recurrent_candidate)
            state = out[t] = (1 - update) * state + update * candidate
        return out

    x = net.embedding[ids].astype(np.float64)
    for forward, backward in net.layers:
        x = np.concatenate([direction(x, forward, False), direction(x, backward, True)], axis=1)
    return x


class _Backbone(torch.nn.Module):
    def __init__(self, encoder: BiGruEncoder) -> None:
        super().__init__()
        self.encoder = encoder


class _Model(torch.nn.Module):
    def __init__(self, encoder: BiGruEncoder) -> None:
        super().__init__()
        self.encoder = _Backbone(encoder)


def test_bigru_initialised_from_lac_computes_lacs_own_hidden_states():
    net = fake_network(hidden=6)
    vocab, rows = lac_vocab(net)
    model = _Model(BiGruEncoder(len(vocab), 8, 6, 2))
    init_from_lac(model, net, rows, "encoder")
    ids = [vocab.index(char) for char in "中国a國"]
    with torch.no_grad():
        ours = model.encoder.encoder.encode(model.encoder.encoder.embedding(torch.tensor([ids])))[0].double().numpy()
    np.testing.assert_allclose(ours, lac_reference(net, [rows[i] for i in ids]), atol=1e-5)


def test_embedding_only_initialisation_leaves_the_encoder_as_it_was():
    net = fake_network(hidden=6)
    vocab, rows = lac_vocab(net)
    model = _Model(BiGruEncoder(len(vocab), 8, 6, 2))
    before = model.encoder.encoder.layers[0].forward_gru.recurrent_gates.detach().clone()
    init_from_lac(model, net, rows, "embedding")
    assert torch.equal(model.encoder.encoder.layers[0].forward_gru.recurrent_gates, before)
    assert torch.equal(model.encoder.encoder.embedding.weight[PAD_ID], torch.zeros(8))
