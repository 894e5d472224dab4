"""Entity-level precision, recall and F1: exact span and type, overall and per type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from scripts.training.tags import ENTITY_TYPES, Span


@dataclass(frozen=True)
class Score:
    """Counts and ratios for one entity type (or all of them)."""

    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        total = self.predicted + self.gold
        return 2 * self.true_positives / total if total else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "true_positives": self.true_positives,
            "predicted": self.predicted,
            "gold": self.gold,
        }


def score_entities(gold: Iterable[Iterable[Span]], predicted: Iterable[Iterable[Span]]) -> dict[str, Score]:
    """Scores per type and under "ALL"; sentence i of gold pairs with sentence i of predicted."""
    hits: Counter[str] = Counter()
    predicted_count: Counter[str] = Counter()
    gold_count: Counter[str] = Counter()
    gold_list, predicted_list = list(gold), list(predicted)
    if len(gold_list) != len(predicted_list):
        raise ValueError(f"{len(gold_list)} gold sentences but {len(predicted_list)} predicted")
    for gold_spans, predicted_spans in zip(gold_list, predicted_list):
        gold_set, predicted_set = set(gold_spans), set(predicted_spans)
        for span in gold_set:
            gold_count[span.type] += 1
        for span in predicted_set:
            predicted_count[span.type] += 1
            if span in gold_set:
                hits[span.type] += 1
    types = list(ENTITY_TYPES) + sorted((set(gold_count) | set(predicted_count)) - set(ENTITY_TYPES))
    scores = {kind: Score(hits[kind], predicted_count[kind], gold_count[kind]) for kind in types}
    scores["ALL"] = Score(sum(hits.values()), sum(predicted_count.values()), sum(gold_count.values()))
    return scores


def format_table(scores: dict[str, Score]) -> str:
    """A fixed-width table, one row per type and ALL last."""
    lines = [f"{'type':<5} {'P':>7} {'R':>7} {'F1':>7} {'gold':>6} {'pred':>6} {'hit':>6}"]
    for kind, score in scores.items():
        lines.append(
            f"{kind:<5} {score.precision:>7.4f} {score.recall:>7.4f} {score.f1:>7.4f} "
            f"{score.gold:>6} {score.predicted:>6} {score.true_positives:>6}"
        )
    return "\n".join(lines)
