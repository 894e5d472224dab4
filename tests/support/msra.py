"""The MSRA NER test split for tests and benchmarks, through the project's own checked fetch."""

from __future__ import annotations

from scripts.training import msra
from scripts.training.tags import spans_from_tags


def read_split(split: str = "test") -> list[tuple[str, list[tuple[str, int, int]]]]:
    """(sentence, [(type, start, end), ...]) per sentence, gold entities from the corpus tags."""
    path = msra.fetch(say=lambda message: None)[split]
    return [
        ("".join(sentence.chars), [tuple(span) for span in spans_from_tags(sentence.labels)])
        for sentence in msra.read_sentences(path)
    ]


def msra_test_sentences() -> list[str]:
    """Just the 5,000 test sentences' text."""
    return [sentence for sentence, _ in read_split()]
