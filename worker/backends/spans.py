"""Chunk planning and entity assembly shared by every backend, so all give the same offsets.

A backend only has to turn each planned chunk into raw entities
(`{"type", "start", "end", ...}` in the chunk's normalised text); cutting,
checking, re-mapping and merging are done here, identically for all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from worker.chunking import Chunk, merge_chunk_entities, split_text
from worker.entities import Entity

logger = logging.getLogger(__name__)

# Label names other tag sets use for the same three entity types (MSRA uses NR/NS/NT).
TYPE_ALIASES = {
    "PER": "PER", "PERSON": "PER", "NR": "PER", "PEOPLE": "PER",
    "LOC": "LOC", "LOCATION": "LOC", "NS": "LOC", "GPE": "LOC",
    "ORG": "ORG", "ORGANIZATION": "ORG", "NT": "ORG",
}  # fmt: skip


def canonical_type(label: object) -> str | None:
    """PER/LOC/ORG for a model's label name, None for types the service does not report."""
    return TYPE_ALIASES.get(str(label).strip().upper())


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """One chunk of one input text that the model has to tag."""

    index: int  # which input text
    chunk: Chunk
    normalized: str  # chunk.text after normalisation, same length


@dataclass(frozen=True, slots=True)
class Plan:
    """Every text's chunks, and the subset that needs the model (not whitespace-only)."""

    texts: Sequence[str]
    chunks_of: list[list[Chunk]]
    jobs: list[ChunkJob]


def plan_chunks(texts: Sequence[str], max_chars: int, overlap: int, normalize: Callable[[str], str]) -> Plan:
    """Split each text into model-sized chunks and normalise them; blank chunks need no model."""
    jobs: list[ChunkJob] = []
    chunks_of: list[list[Chunk]] = []
    for index, text in enumerate(texts):
        chunks = split_text(text, max_chars, overlap)
        chunks_of.append(chunks)
        for chunk in chunks:
            normalized = normalize(chunk.text)
            if normalized.strip():  # the pipeline raises on whitespace-only text
                jobs.append(ChunkJob(index, chunk, normalized))
    return Plan(texts, chunks_of, jobs)


def assemble(plan: Plan, raw_per_job: Iterable[list[dict]]) -> list[list[Entity]]:
    """Entities per input text from each job's raw entities, in original offsets, merged."""
    found: dict[tuple[int, int], list[Entity]] = {}
    for job, raw in zip(plan.jobs, raw_per_job):
        found[(job.index, job.chunk.start)] = chunk_entities(raw, job, plan.texts[job.index])
    return [
        merge_chunk_entities(
            ((chunk, found.get((index, chunk.start), [])) for chunk in chunks),
            len(plan.texts[index]),
        )
        for index, chunks in enumerate(plan.chunks_of)
    ]


def chunk_entities(raw: list[dict], job: ChunkJob, text: str) -> list[Entity]:
    """Checked entities in the original text's offsets, spans cut from the original text."""
    normalized, chunk = job.normalized, job.chunk
    entities = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        entity_type = canonical_type(item.get("type"))
        offsets = raw_offsets(item)
        if entity_type is None or offsets is None:
            continue
        start, end = offsets
        if not 0 <= start < end <= len(normalized):
            logger.warning("dropping entity with offsets %d:%d outside a %d-char chunk", start, end, len(normalized))
            continue
        if "span" in item and item["span"] != normalized[start:end]:
            logger.warning("dropping entity whose span does not match its offsets")
            continue
        # Spaces stand in for control characters; an entity never starts or ends on one.
        while start < end and normalized[start].isspace():
            start += 1
        while end > start and normalized[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        start, end = chunk.start + start, chunk.start + end
        entities.append(Entity(entity_type, start, end, text[start:end]))
    return entities


def raw_offsets(item: dict) -> tuple[int, int] | None:
    """Integer (start, end) of a raw entity, or None if they are not integers."""
    try:
        start, end = item["start"], item["end"]
        if int(start) != start or int(end) != end:
            return None
        return int(start), int(end)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def bies_spans(labels: Sequence[str], offsets: Sequence[tuple[int, int]], text: str) -> list[dict]:
    """Raw entities from per-word BIES labels, grouped exactly as ModelScope's NER pipeline does.

    Same quirks as the pipeline's own post-processing: an I- or E- without a
    preceding B- opens an entity, a B- or S- closes any open one, and the type
    is the first label's.
    """
    spans: list[dict] = []
    open_span: dict = {}
    for label, (start, end) in zip(labels, offsets):
        tag = label[0]
        if tag in "BS":
            if open_span:
                open_span["span"] = text[open_span["start"] : open_span["end"]]
                spans.append(open_span)
            open_span = {"type": label[2:], "start": start, "end": end}
        if tag in "IE" and not open_span:
            open_span = {"type": label[2:], "start": start, "end": end}
        if tag in "IES" and open_span:
            open_span["end"] = end
        if tag in "ES" and open_span:
            open_span["span"] = text[open_span["start"] : open_span["end"]]
            spans.append(open_span)
            open_span = {}
    if open_span:
        open_span["span"] = text[open_span["start"] : open_span["end"]]
        spans.append(open_span)
    return spans
