"""Split long texts into model-sized overlapping chunks and merge their entities back.

The NER pipeline silently truncates anything longer than its window, so long
texts are cut into chunks that each fit, preferably at sentence ends, with an
overlap so an entity cut by one chunk edge is seen whole by the neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from worker.entities import Entity

# Where a sentence ends; a cut right after one of these splits nothing apart.
SENTENCE_ENDS = frozenset("。！？!?\n\r…")
# Weaker places to cut when a sentence is longer than a chunk.
CLAUSE_ENDS = frozenset("；;，,、：:\t \u3000")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A slice text[start:end] of the original text."""

    start: int
    end: int
    text: str


def _boundary_strength(text: str, pos: int) -> int:
    """How good a cut is just before text[pos]: 2 sentence end, 1 clause end, 0 none."""
    previous = text[pos - 1]
    if previous in SENTENCE_ENDS:
        return 2
    if previous in CLAUSE_ENDS:
        return 1
    return 0


def _best_cut(text: str, limit: int, min_end: int) -> int:
    """The cut in (min_end, limit] after the strongest boundary, latest among equals; else limit."""
    best_pos, best_strength = limit, 0
    for pos in range(limit, min_end, -1):
        strength = _boundary_strength(text, pos)
        if strength > best_strength:
            best_pos, best_strength = pos, strength
            if strength == 2:
                break
    return best_pos


def _next_start(text: str, cut: int, start: int, overlap: int) -> int:
    """Where the next chunk begins: right at a sentence end, else `overlap` chars back."""
    if _boundary_strength(text, cut) == 2:
        return cut  # a sentence end splits no entity
    return max(start + 1, cut - overlap)


def split_text(text: str, max_chars: int, overlap: int = 0) -> list[Chunk]:
    """Cover the whole text with chunks of at most max_chars characters."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    overlap = max(0, min(overlap, max_chars // 2))
    chunks: list[Chunk] = []
    start, length = 0, len(text)
    while start < length:
        limit = start + max_chars
        if limit >= length:
            chunks.append(Chunk(start, length, text[start:length]))
            break
        # Do not accept a cut that would make a chunk tiny; half a window is plenty.
        cut = _best_cut(text, limit, min_end=start + max(1, max_chars // 2))
        chunks.append(Chunk(start, cut, text[start:cut]))
        start = _next_start(text, cut, start, overlap)
    return chunks


def _edge_distance(entity: Entity, chunk: Chunk, text_length: int) -> int:
    """How far the entity sits from an artificial chunk edge (the text's own ends do not count)."""
    left = entity.start - chunk.start if chunk.start > 0 else text_length
    right = chunk.end - entity.end if chunk.end < text_length else text_length
    return min(left, right)


def merge_chunk_entities(results: Iterable[tuple[Chunk, list[Entity]]], text_length: int) -> list[Entity]:
    """Merge entities found per chunk (already in text offsets) into one non-overlapping list.

    Where predictions overlap, the one made further from its chunk's edge wins,
    because the model saw more context around it.
    """
    candidates: list[tuple[int, Entity]] = []
    for chunk, entities in results:
        for entity in entities:
            candidates.append((_edge_distance(entity, chunk, text_length), entity))
    candidates.sort(key=lambda item: (-item[0], item[1].start, item[1].end, item[1].type))

    taken = bytearray(text_length)
    kept: list[Entity] = []
    for _, entity in candidates:
        if not any(taken[entity.start : entity.end]):
            taken[entity.start : entity.end] = b"\x01" * (entity.end - entity.start)
            kept.append(entity)
    kept.sort(key=lambda entity: (entity.start, entity.end))
    return kept
