"""Batched CRF Viterbi decoding in numpy, tie-for-tie the same as ModelScope's torch CRF.

Decoding runs on every request outside the ONNX graph, so it must be cheap
for a whole micro-batch at once and give exactly the reference's tags: the
same float32 sums in the same order, and the first maximum on ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CrfParams:
    """A linear-chain CRF's scores: transitions[i, j] is from tag i to tag j."""

    start: np.ndarray  # (num_tags,)
    end: np.ndarray  # (num_tags,)
    transitions: np.ndarray  # (num_tags, num_tags)

    @property
    def num_tags(self) -> int:
        return int(self.start.shape[0])

    def save(self, path: Path) -> None:
        np.savez(path, start=self.start, end=self.end, transitions=self.transitions)

    @classmethod
    def load(cls, path: Path) -> CrfParams:
        with np.load(path) as data:
            return cls(*(np.ascontiguousarray(data[key], dtype=np.float32) for key in ("start", "end", "transitions")))


def viterbi_decode(emissions: np.ndarray, lengths: np.ndarray, crf: CrfParams) -> np.ndarray:
    """Best tag path per sequence; emissions (batch, steps, tags), positions past a length get 0."""
    emissions = np.asarray(emissions, dtype=np.float32)
    lengths = np.asarray(lengths, dtype=np.int64)
    batch, steps, tags = emissions.shape
    if batch == 0 or steps == 0:
        return np.zeros((batch, steps), dtype=np.int64)
    transitions = crf.transitions.astype(np.float32, copy=False)
    score = crf.start.astype(np.float32, copy=False) + emissions[:, 0]
    history = np.empty((max(steps - 1, 0), batch, tags), dtype=np.int64)
    keep = np.broadcast_to(np.arange(tags, dtype=np.int64), (batch, tags))
    active = np.arange(steps)[:, None] < lengths[None, :]  # (steps, batch)
    all_active = active.all(axis=1)
    candidates = np.empty((batch, tags, tags), dtype=np.float32)
    for step in range(1, steps):
        # Same order of float32 additions as torch: (score + transitions) + emission.
        np.add(score[:, :, None], transitions, out=candidates)
        candidates += emissions[:, step, None, :]
        best = candidates.argmax(axis=1)
        if all_active[step]:
            score = candidates.max(axis=1)
            history[step - 1] = best
        else:
            # A finished sequence keeps its score and its tag, so one backward pass serves every length.
            now = active[step][:, None]
            score = np.where(now, candidates.max(axis=1), score)
            history[step - 1] = np.where(now, best, keep)
    last = (score + crf.end.astype(np.float32, copy=False)).argmax(axis=1)
    path = np.empty((steps, batch), dtype=np.int64)
    path[steps - 1] = last
    current = last
    rows = np.arange(batch)
    for step in range(steps - 1, 0, -1):
        current = history[step - 1][rows, current]
        path[step - 1] = current
    path[~active] = 0
    return path.T.copy()
