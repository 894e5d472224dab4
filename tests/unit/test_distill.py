"""Teacher entities become BIES labels that read back as the same entities."""

from __future__ import annotations

from types import SimpleNamespace

from scripts.training.distill import labels_of, relabel
from scripts.training.msra import Sentence
from scripts.training.tags import Span, spans_from_tags


def entity(kind: str, start: int, end: int) -> SimpleNamespace:
    return SimpleNamespace(type=kind, start=start, end=end)


def test_labels_of_entities_read_back_as_those_entities():
    entities = [entity("PER", 0, 3), entity("LOC", 4, 5), entity("ORG", 6, 10)]
    labels = labels_of(11, entities)
    assert spans_from_tags(labels) == [Span("PER", 0, 3), Span("LOC", 4, 5), Span("ORG", 6, 10)]
    assert labels[3] == labels[5] == labels[10] == "O"


class Teacher:
    def predict_batch(self, texts: list[str]) -> list[list[SimpleNamespace]]:
        return [[entity("LOC", text.index("北京"), text.index("北京") + 2)] if "北京" in text else [] for text in texts]


def test_relabel_keeps_the_characters_and_takes_the_teachers_entities():
    sentence = Sentence(tuple("他去北京。"), ("S-PER", "O", "O", "O", "O"))
    (relabelled,) = relabel(Teacher(), [sentence])
    assert relabelled.chars == sentence.chars
    assert spans_from_tags(relabelled.labels) == [Span("LOC", 2, 4)]
