"""Tag schemes: MSRA's BMES in, the BIES labels ModelScope's NER pipeline reads out."""

from __future__ import annotations

from typing import NamedTuple, Sequence

ENTITY_TYPES = ("PER", "LOC", "ORG")
# MSRA corpora spell the types as nr/ns/nt in some releases and PER/LOC/ORG in others.
TYPE_ALIASES = {"PER": "PER", "NR": "PER", "LOC": "LOC", "NS": "LOC", "ORG": "ORG", "NT": "ORG"}
OUTSIDE = "O"


class Span(NamedTuple):
    """An entity as (type, start, end) with end exclusive: what the metric compares."""

    type: str
    start: int
    end: int


def bies_labels() -> list[str]:
    """The label order of the shipped model: O first, then B/I/E/S for each type."""
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in ENTITY_TYPES for prefix in "BIES"]


def to_bies(tag: str) -> str:
    """One BMES/BIO-style tag as a BIES label with a canonical type (M becomes I)."""
    if tag == OUTSIDE:
        return OUTSIDE
    prefix, _, kind = tag.partition("-")
    prefix = {"M": "I"}.get(prefix.upper(), prefix.upper())
    canonical = TYPE_ALIASES.get(kind.upper())
    if prefix not in "BIES" or len(prefix) != 1 or canonical is None:
        raise ValueError(f"not a BMES/BIES tag of a known type: {tag!r}")
    return f"{prefix}-{canonical}"


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """Entities of a BIES/BMES tag sequence; a broken sequence yields no entity for the broken part."""
    spans: list[Span] = []
    start: int | None = None
    kind = ""
    for index, tag in enumerate(tags):
        label = to_bies(tag)
        prefix, _, this_kind = label.partition("-")
        if prefix == "S":
            spans.append(Span(this_kind, index, index + 1))
            start = None
        elif prefix == "B":
            start, kind = index, this_kind
        elif prefix in "IE" and label != OUTSIDE and start is not None and this_kind == kind:
            if prefix == "E":
                spans.append(Span(kind, start, index + 1))
                start = None
        else:  # O, or an I/E that does not continue the open entity
            start = None
    return spans
