"""Scores a served model on MSRA through the backend that answers requests, not a side path."""

from __future__ import annotations

from typing import Sequence

from tqdm import tqdm

from scripts.training.metrics import Score, score_entities
from scripts.training.msra import Sentence
from scripts.training.tags import Span, spans_from_tags
from worker.backends import NerBackend


def evaluate_backend(backend: NerBackend, sentences: Sequence[Sentence], batch_size: int = 64) -> dict[str, Score]:
    """Entity scores of the backend's predict_batch against the gold BIES labels."""
    gold = [spans_from_tags(sentence.labels) for sentence in sentences]
    predicted: list[list[Span]] = []
    texts = [sentence.text for sentence in sentences]
    for start in tqdm(range(0, len(texts), batch_size), desc="evaluating", unit="batch", mininterval=5):
        for entities in backend.predict_batch(texts[start : start + batch_size]):
            predicted.append([Span(entity.type, entity.start, entity.end) for entity in entities])
    return score_entities(gold, predicted)
