"""Distillation: sentences labelled by a trained teacher model instead of by hand."""

from __future__ import annotations

from typing import Sequence

from scripts.training.msra import Sentence
from scripts.training.tags import OUTSIDE
from worker.backends import NerBackend


def labels_of(length: int, entities: Sequence) -> tuple[str, ...]:
    """BIES labels of a text of `length` characters holding these (non-overlapping) entities."""
    labels = [OUTSIDE] * length
    for entity in entities:
        start, end, kind = entity.start, entity.end, entity.type
        if end - start == 1:
            labels[start] = f"S-{kind}"
        else:
            labels[start] = f"B-{kind}"
            labels[start + 1 : end - 1] = [f"I-{kind}"] * (end - start - 2)
            labels[end - 1] = f"E-{kind}"
    return tuple(labels)


def relabel(teacher: NerBackend, sentences: Sequence[Sentence], batch_size: int = 64) -> list[Sentence]:
    """The same characters, each sentence labelled with the teacher's entities."""
    out: list[Sentence] = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        for sentence, entities in zip(chunk, teacher.predict_batch([s.text for s in chunk])):
            out.append(Sentence(sentence.chars, labels_of(len(sentence.chars), entities)))
    return out
