"""The bigru-crf ONNX graph gives the torch model's emission scores, whatever the batch's padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.backends.bigru_crf import BiGruEncoder
from worker.backends.bigru_onnx import build_graph

ort = pytest.importorskip("onnxruntime")


class _Head(torch.nn.Module):
    def __init__(self, hidden: int, labels: int) -> None:
        super().__init__()
        self.ffn = torch.nn.Linear(2 * hidden, labels)


class _Backbone(torch.nn.Module):
    def __init__(self, encoder: BiGruEncoder) -> None:
        super().__init__()
        self.encoder = encoder


class _Model(torch.nn.Module):
    """The attribute layout of ModelScope's model: encoder.encoder (BiGruEncoder) and head.ffn."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = _Backbone(BiGruEncoder(vocab_size=40, embed_width=8, hidden_size=5, num_layers=2))
        self.head = _Head(5, 7)
        for parameter in self.parameters():
            torch.nn.init.uniform_(parameter, -0.5, 0.5)

    def emissions(self, ids: list[int]) -> np.ndarray:
        encoder = self.encoder.encoder
        with torch.no_grad():
            return self.head.ffn(encoder.encode(encoder.embedding(torch.tensor([ids]))))[0].numpy()


@pytest.fixture(scope="module")
def model_and_session(tmp_path_factory):
    model = _Model()
    path = tmp_path_factory.mktemp("onnx") / "bigru.onnx"
    names = build_graph(model, path)
    assert names == ["input_ids", "reverse_index"]
    return model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(session, sequences: list[list[int]]) -> list[np.ndarray]:
    """Right-padded batch with reverse_index as the fast backend builds it."""
    lengths = np.array([len(s) for s in sequences])
    steps = int(lengths.max())
    ids = np.zeros((len(sequences), steps), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
    positions = np.arange(steps)[None, :]
    reverse = np.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
    emissions = session.run(["emissions"], {"input_ids": ids, "reverse_index": reverse})[0]
    return [emissions[row, : lengths[row]] for row in range(len(sequences))]


def test_one_sequence_scores_as_the_torch_model_scores_it(model_and_session):
    model, session = model_and_session
    ids = [3, 9, 1, 22, 5, 5, 30]
    np.testing.assert_allclose(run(session, [ids])[0], model.emissions(ids), atol=1e-5)


def test_padding_in_a_batch_changes_no_sequence_scores(model_and_session):
    model, session = model_and_session
    sequences = [[4, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9], [17, 3, 3, 11]]
    for got, ids in zip(run(session, sequences), sequences):
        np.testing.assert_allclose(got, model.emissions(ids), atol=1e-5)


def test_the_torch_encoder_holds_its_state_over_masked_padding():
    model = _Model()
    encoder = model.encoder.encoder
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    mask = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        padded = encoder.encode(encoder.embedding(ids), mask)[0, :3]
        alone = encoder.encode(encoder.embedding(ids[:, :3]))[0]
    torch.testing.assert_close(padded, alone)
