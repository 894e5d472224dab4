"""The entity value every backend returns and every API response serialises."""

from __future__ import annotations

from dataclasses import dataclass

ENTITY_TYPES = ("PER", "LOC", "ORG")


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity with character offsets into the original text (end exclusive)."""

    type: str
    start: int
    end: int
    span: str

    def __post_init__(self) -> None:
        # Models hand back numpy scalars; JSON encoders and equality checks want plain values.
        object.__setattr__(self, "type", str(self.type))
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "end", int(self.end))
        object.__setattr__(self, "span", str(self.span))

    def to_dict(self) -> dict[str, str | int]:
        """The wire form of the contract: {"type", "start", "end", "span"}."""
        return {"type": self.type, "start": self.start, "end": self.end, "span": self.span}
