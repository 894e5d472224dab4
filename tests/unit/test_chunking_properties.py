"""Properties of the chunker for any text: it covers everything, and chunking never changes an answer it need not."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.unit.fake_backend import FakeBackend
from worker.chunking import Chunk, merge_chunk_entities, split_text
from worker.entities import Entity

PIECES = ["北京", "张三", "清华大学", "在", "工作", "。", "，", "！", "\n", " ", "a", "Z", "7", "😀", "𠀀"]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
any_texts = st.text(max_size=300)
windows = st.integers(min_value=1, max_value=80)
overlaps = st.integers(min_value=0, max_value=40)


def tag(text: str) -> list[Entity]:
    """A deterministic stand-in for the model: every known word is an entity."""
    return FakeBackend._tag(text)


def chunked_tag(text: str, max_chars: int, overlap: int) -> list[Entity]:
    """The worker's long-text path: tag each chunk, move offsets back into the text, merge."""
    results = []
    for chunk in split_text(text, max_chars, overlap):
        shifted = [Entity(e.type, e.start + chunk.start, e.end + chunk.start, e.span) for e in tag(chunk.text)]
        results.append((chunk, shifted))
    return merge_chunk_entities(results, len(text))


def inside_some_chunk(entity: Entity, chunks: list[Chunk]) -> bool:
    return any(c.start <= entity.start and entity.end <= c.end for c in chunks)


@settings(max_examples=300, deadline=None)
@given(any_texts, windows, overlaps)
def test_chunks_are_valid_slices_that_cover_the_whole_text_in_order(text, max_chars, overlap):
    chunks = split_text(text, max_chars, overlap)
    position = 0
    for chunk in chunks:
        assert 0 <= chunk.start <= position < chunk.end <= len(text)
        assert chunk.end - chunk.start <= max_chars
        assert chunk.text == text[chunk.start : chunk.end]
        position = chunk.end
    assert position == len(text)


@settings(max_examples=300, deadline=None)
@given(texts, windows, overlaps)
def test_merged_entities_have_valid_offsets_and_never_overlap(text, max_chars, overlap):
    entities = chunked_tag(text, max_chars, overlap)
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert text[entity.start : entity.end] == entity.span
    assert all(a.end <= b.start for a, b in zip(entities, entities[1:]))


@settings(max_examples=300, deadline=None)
@given(texts, windows, overlaps)
def test_chunk_size_does_not_change_the_result_when_no_entity_is_cut(text, max_chars, overlap):
    whole = tag(text)
    assume(all(inside_some_chunk(e, split_text(text, max_chars, overlap)) for e in whole))
    assert chunked_tag(text, max_chars, overlap) == whole
