"""The numpy Viterbi returns the highest-scoring tag path, as the reference CRF defines the score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from worker.backends.viterbi import CrfParams, viterbi_decode


def path_score(emissions: np.ndarray, tags: tuple[int, ...], crf: CrfParams) -> float:
    """The CRF score of one tag path: start + emissions + transitions + end."""
    score = crf.start[tags[0]] + emissions[0, tags[0]]
    for step in range(1, len(tags)):
        score += crf.transitions[tags[step - 1], tags[step]] + emissions[step, tags[step]]
    return float(score + crf.end[tags[-1]])


def brute_force(emissions: np.ndarray, crf: CrfParams) -> tuple[int, ...]:
    paths = itertools.product(range(crf.num_tags), repeat=emissions.shape[0])
    return max(paths, key=lambda tags: path_score(emissions, tags, crf))


def random_crf(rng: np.random.Generator, tags: int) -> CrfParams:
    return CrfParams(*(rng.normal(size=shape).astype(np.float32) for shape in ((tags,), (tags,), (tags, tags))))


@pytest.mark.parametrize("seed", range(40))
def test_each_sequence_of_a_padded_batch_gets_its_brute_force_best_path(seed):
    rng = np.random.default_rng(seed)
    tags, batch, steps = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 6))
    crf = random_crf(rng, tags)
    emissions = rng.normal(size=(batch, steps, tags)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, size=batch)
    paths = viterbi_decode(emissions, lengths, crf)
    assert paths.shape == (batch, steps)
    for row in range(batch):
        length = int(lengths[row])
        assert tuple(paths[row, :length]) == brute_force(emissions[row, :length], crf)
        assert (paths[row, length:] == 0).all()  # padding positions get tag 0, like the reference


def test_padding_content_never_changes_a_sequence_path():
    rng = np.random.default_rng(7)
    crf = random_crf(rng, 6)
    emissions = rng.normal(size=(1, 9, 6)).astype(np.float32)
    alone = viterbi_decode(emissions[:, :5], np.array([5]), crf)
    noisy = emissions.copy()
    noisy[:, 5:] = rng.normal(size=(1, 4, 6)) * 100
    assert (viterbi_decode(noisy, np.array([5]), crf)[:, :5] == alone).all()


def test_transitions_matter_not_only_emissions():
    # Emissions alone prefer tag 1 then tag 1, but 1 -> 1 is forbidden by a huge penalty.
    crf = CrfParams(np.zeros(2, np.float32), np.zeros(2, np.float32), np.array([[0, 0], [0, -100]], np.float32))
    emissions = np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32)
    assert viterbi_decode(emissions, np.array([2]), crf).tolist() in ([[0, 1]], [[1, 0]])


def test_ties_pick_the_first_tag_as_torch_max_does():
    crf = CrfParams(np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros((3, 3), np.float32))
    assert viterbi_decode(np.zeros((2, 4, 3), np.float32), np.array([4, 2]), crf).tolist() == [[0] * 4, [0] * 4]


def test_empty_batch():
    crf = CrfParams(np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros((3, 3), np.float32))
    assert viterbi_decode(np.zeros((0, 4, 3), np.float32), np.array([], np.int64), crf).shape == (0, 4)


def test_crf_params_round_trip(tmp_path):
    crf = random_crf(np.random.default_rng(1), 4)
    crf.save(tmp_path / "crf.npz")
    loaded = CrfParams.load(tmp_path / "crf.npz")
    for name in ("start", "end", "transitions"):
        assert np.array_equal(getattr(loaded, name), getattr(crf, name))
