"""Tags become entities exactly as ModelScope's NER pipeline groups them, quirks included."""

from __future__ import annotations

from worker.backends.spans import bies_spans, canonical_type

TEXT = "ABCDEFGH"
OFFSETS = [(i, i + 1) for i in range(len(TEXT))]


def spans(labels: list[str]) -> list[tuple[str, int, int]]:
    return [(s["type"], s["start"], s["end"]) for s in bies_spans(labels, OFFSETS[: len(labels)], TEXT)]


def test_well_formed_bies():
    assert spans(["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-ORG", "E-ORG"]) == [
        ("PER", 0, 3), ("LOC", 4, 5), ("ORG", 5, 7)]  # fmt: skip


def test_an_inside_tag_without_a_begin_opens_an_entity():
    assert spans(["O", "I-LOC", "E-LOC", "O"]) == [("LOC", 1, 3)]
    assert spans(["E-PER", "O"]) == [("PER", 0, 1)]


def test_begin_closes_an_open_entity_and_the_first_type_wins():
    assert spans(["B-PER", "B-LOC", "I-ORG", "E-ORG"]) == [("PER", 0, 1), ("LOC", 1, 4)]


def test_o_does_not_close_an_entity_and_an_open_one_ends_with_the_text():
    assert spans(["B-PER", "O", "I-PER"]) == [("PER", 0, 3)]
    assert spans(["B-ORG", "I-ORG"]) == [("ORG", 0, 2)]


def test_spans_are_cut_from_the_text_and_word_offsets_may_be_wider_than_one_char():
    [entity] = bies_spans(["S-ORG"], [(2, 5)], TEXT)
    assert entity == {"type": "ORG", "start": 2, "end": 5, "span": "CDE"}


def test_label_names_of_other_tag_sets():
    assert [canonical_type(t) for t in ("NR", "ns", "NT", "GPE", "MISC")] == ["PER", "LOC", "ORG", "LOC", None]
