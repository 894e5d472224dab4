"""Long texts are split so nothing is dropped, and chunk entities merge back cleanly."""

import random

import pytest

from worker.chunking import Chunk, merge_chunk_entities, split_text
from worker.entities import Entity


def random_text(rng: random.Random, length: int) -> str:
    alphabet = "李强在北京会见了联合国秘书长abcXYZ0123 ，。！？；\n、"
    return "".join(rng.choice(alphabet) for _ in range(length))


RANDOM_CASES = [
    (random_text(random.Random(seed), length), max_chars, overlap)
    for seed, length, max_chars, overlap in [
        (1, 0, 10, 2),
        (2, 1, 1, 0),
        (3, 5, 2, 1),
        (4, 300, 16, 4),
        (5, 1000, 126, 20),
        (6, 1000, 7, 3),
        (7, 513, 126, 0),
        (8, 2000, 50, 40),
    ]
]


@pytest.mark.parametrize(("text", "max_chars", "overlap"), RANDOM_CASES)
def test_chunks_never_exceed_max_chars(text, max_chars, overlap):
    assert all(len(chunk.text) <= max_chars for chunk in split_text(text, max_chars, overlap))


@pytest.mark.parametrize(("text", "max_chars", "overlap"), RANDOM_CASES)
def test_chunk_text_is_the_slice_its_offsets_name(text, max_chars, overlap):
    for chunk in split_text(text, max_chars, overlap):
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert text[chunk.start : chunk.end] == chunk.text


@pytest.mark.parametrize(("text", "max_chars", "overlap"), RANDOM_CASES)
def test_chunks_cover_every_character_of_the_text(text, max_chars, overlap):
    covered = set()
    for chunk in split_text(text, max_chars, overlap):
        covered.update(range(chunk.start, chunk.end))
    assert covered == set(range(len(text)))


@pytest.mark.parametrize(("text", "max_chars", "overlap"), RANDOM_CASES)
def test_chunks_advance_through_the_text(text, max_chars, overlap):
    chunks = split_text(text, max_chars, overlap)
    assert all(b.start > a.start and b.end > a.end for a, b in zip(chunks, chunks[1:]))


def test_empty_text_has_no_chunks():
    assert split_text("", 10) == []


def test_text_that_fits_is_a_single_chunk():
    assert split_text("李强在北京。", 126, 20) == [Chunk(0, 6, "李强在北京。")]


def test_cut_falls_right_after_the_last_sentence_end_in_the_window():
    text = "一二三四五。六七八九十。" + "甲" * 20
    assert split_text(text, 15, 0)[0].text == "一二三四五。六七八九十。"


def test_sentence_end_is_preferred_over_a_later_comma():
    text = "一二三四五六七。八九十，甲乙丙丁戊己庚"
    assert split_text(text, 15, 0)[0].text == "一二三四五六七。"


def test_comma_is_used_when_the_window_has_no_sentence_end():
    text = "一二三四五六七八，九十甲乙丙丁戊己庚辛"
    assert split_text(text, 15, 0)[0].text == "一二三四五六七八，"


def test_text_without_any_boundary_is_cut_at_the_limit():
    text = "甲" * 25
    assert [len(chunk.text) for chunk in split_text(text, 10, 0)] == [10, 10, 5]


def test_consecutive_chunks_overlap_by_at_most_the_overlap():
    chunks = split_text("甲" * 100, 30, 8)
    assert all(0 < a.end - b.start <= 8 for a, b in zip(chunks, chunks[1:]))


def test_chunk_cut_inside_a_sentence_is_overlapped_by_the_next_one():
    chunks = split_text("甲" * 30, 20, 6)
    assert chunks[1].start == chunks[0].end - 6


def test_chunk_cut_at_a_sentence_end_is_not_overlapped():
    text = "一二三四五六七八九十甲乙。丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥"
    chunks = split_text(text, 20, 10)
    assert chunks[0].end == chunks[1].start == text.index("丙")


def test_max_chars_below_one_is_rejected():
    with pytest.raises(ValueError):
        split_text("abc", 0)


def entity(type_: str, start: int, end: int, text: str) -> Entity:
    return Entity(type_, start, end, text[start:end])


def test_merge_keeps_one_copy_of_an_entity_seen_by_two_chunks():
    text = "甲" * 30
    first, second = Chunk(0, 20, text[0:20]), Chunk(10, 30, text[10:30])
    same = entity("PER", 12, 15, text)
    merged = merge_chunk_entities([(first, [same]), (second, [same])], len(text))
    assert merged == [same]


def test_merge_prefers_the_prediction_further_from_its_chunk_edge():
    text = "甲" * 30
    first, second = Chunk(0, 20, text[0:20]), Chunk(10, 30, text[10:30])
    cut_by_edge = entity("LOC", 17, 20, text)  # touches the first chunk's end
    seen_whole = entity("ORG", 16, 22, text)  # well inside the second chunk
    merged = merge_chunk_entities([(first, [cut_by_edge]), (second, [seen_whole])], len(text))
    assert merged == [seen_whole]


def test_merge_does_not_treat_the_text_start_as_a_chunk_edge():
    text = "甲" * 30
    first, second = Chunk(0, 20, text[0:20]), Chunk(10, 30, text[10:30])
    at_text_start = entity("PER", 0, 2, text)
    assert merge_chunk_entities([(first, [at_text_start]), (second, [])], len(text)) == [at_text_start]


def test_merge_output_is_sorted_and_non_overlapping():
    text = "甲" * 40
    chunks = [Chunk(0, 20, text[0:20]), Chunk(12, 32, text[12:32]), Chunk(24, 40, text[24:40])]
    found = [
        [entity("PER", 1, 3, text), entity("LOC", 15, 19, text)],
        [entity("LOC", 14, 18, text), entity("ORG", 26, 30, text)],
        [entity("ORG", 27, 31, text), entity("PER", 35, 38, text)],
    ]
    merged = merge_chunk_entities(zip(chunks, found), len(text))
    assert merged == sorted(merged, key=lambda e: e.start)
    assert all(a.end <= b.start for a, b in zip(merged, merged[1:]))


def test_merge_keeps_entities_of_chunks_that_do_not_overlap():
    text = "甲" * 20
    left, right = Chunk(0, 10, text[:10]), Chunk(10, 20, text[10:])
    a, b = entity("PER", 2, 4, text), entity("LOC", 12, 15, text)
    assert merge_chunk_entities([(left, [a]), (right, [b])], len(text)) == [a, b]
