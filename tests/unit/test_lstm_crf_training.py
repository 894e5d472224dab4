"""What the training code guarantees about the lstm-crf model it ships."""

from __future__ import annotations

import torch

from scripts.training.lstm_crf import FORBIDDEN, allowed_transition, enforce_bies, neutralise_padding, tie_rows_to_unk
from scripts.training.modeldir import build_model, write_config_files
from scripts.training.tags import bies_labels
from scripts.training.vocab import PAD_ID, UNK_ID, build_vocab, char_counts, rare_ids


def tiny_model(tmp_path, embed_width=12, hidden=8):
    labels = bies_labels()
    vocab = build_vocab(char_counts(["李强在北京", "联合国"]))
    backbone = write_config_files(tmp_path, labels, vocab, embed_width, hidden)
    torch.manual_seed(0)
    return build_model(tmp_path, len(labels), backbone), labels, vocab


def test_bies_grammar():
    assert allowed_transition("B-PER", "I-PER") and allowed_transition("I-PER", "E-PER")
    assert allowed_transition("E-PER", "B-LOC") and allowed_transition("S-ORG", "O")
    assert not allowed_transition("B-PER", "E-LOC")
    assert not allowed_transition("B-PER", "O")
    assert not allowed_transition("O", "I-PER")
    assert not allowed_transition("E-PER", "E-PER")


def test_crf_cannot_decode_a_broken_entity(tmp_path):
    model, labels, _ = tiny_model(tmp_path)
    crf = model.head.crf
    enforce_bies(crf, labels)
    # Emissions that on their own would prefer "O I-PER O" (an entity without a beginning).
    emissions = torch.full((1, 3, len(labels)), -5.0)
    emissions[0, 0, labels.index("O")] = 0
    emissions[0, 1, labels.index("I-PER")] = 5
    emissions[0, 2, labels.index("O")] = 0
    path = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool)).squeeze(0).tolist()[0]
    assert labels[path[1]] != "I-PER"
    assert crf.start_transitions[labels.index("E-LOC")] == FORBIDDEN


def test_padding_does_not_change_the_lstm_outputs_of_real_tokens(tmp_path):
    model, _, vocab = tiny_model(tmp_path)
    residual = neutralise_padding(model)
    assert residual < 1e-5
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.cat([ids, torch.full((1, 60), PAD_ID)], dim=1)
    with torch.no_grad():
        alone = model.encoder(input_ids=ids).last_hidden_state
        with_padding = model.encoder(input_ids=padded).last_hidden_state[:, :4]
    assert torch.allclose(alone, with_padding, atol=1e-5)


def test_rare_characters_ship_as_unk(tmp_path):
    model, _, vocab = tiny_model(tmp_path)
    counts = char_counts(["李李强"])
    rare = rare_ids(vocab, counts, min_count=2)
    assert vocab.index("强") in rare and vocab.index("李") not in rare
    embedding = model.encoder.embedding.embedding
    tie_rows_to_unk(embedding, rare)
    assert torch.equal(embedding.weight[vocab.index("强")], embedding.weight[UNK_ID])


def test_vocabulary_puts_special_tokens_first_and_has_no_duplicates():
    vocab = build_vocab(char_counts(["ABC李强abc"]))
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == len(set(vocab))
    assert "a" in vocab and "A" not in vocab  # the tokenizer lower-cases
