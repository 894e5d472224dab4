"""Scores a served model on MSRA through the backend that answers requests, not a side path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from tqdm import tqdm

from scripts.training.msra import Sentence
from scripts.training.tags import Span, spans_from_tags
from worker.backends import NerBackend


@dataclass(frozen=True)
class Novelty:
    """Recall split by whether a gold mention (same text, same type) occurs as an entity in training.

    Held-out text is mostly names a model has never seen, so unseen recall is what generalises."""

    seen_recall: float
    unseen_recall: float
    unseen_share: float

    def to_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in self.__dict__.items()}


def predict_spans(backend: NerBackend, sentences: Sequence[Sentence], batch_size: int = 64) -> list[list[Span]]:
    """The backend's entities for each sentence, as spans."""
    predicted: list[list[Span]] = []
    texts = [sentence.text for sentence in sentences]
    for start in tqdm(range(0, len(texts), batch_size), desc="evaluating", unit="batch", mininterval=5):
        for entities in backend.predict_batch(texts[start : start + batch_size]):
            predicted.append([Span(entity.type, entity.start, entity.end) for entity in entities])
    return predicted


def mentions(sentences: Iterable[Sentence]) -> set[tuple[str, str]]:
    """Every (type, text) that is an entity somewhere in these sentences."""
    return {
        (span.type, sentence.text[span.start : span.end])
        for sentence in sentences
        for span in spans_from_tags(sentence.labels)
    }


def novelty(train: Iterable[Sentence], test: Sequence[Sentence], predicted: Sequence[Sequence[Span]]) -> Novelty:
    """Recall on test mentions seen as entities in training and on the others."""
    known = mentions(train)
    counts = {True: [0, 0], False: [0, 0]}  # seen -> [gold, hit]
    for sentence, spans in zip(test, predicted):
        found = set(spans)
        for span in spans_from_tags(sentence.labels):
            tally = counts[(span.type, sentence.text[span.start : span.end]) in known]
            tally[0] += 1
            tally[1] += span in found
    gold_total = counts[True][0] + counts[False][0]
    return Novelty(
        seen_recall=counts[True][1] / max(1, counts[True][0]),
        unseen_recall=counts[False][1] / max(1, counts[False][0]),
        unseen_share=counts[False][0] / max(1, gold_total),
    )
