"""Make text safe for the ModelScope tokenizer without moving a single offset.

ModelScope's NER pipeline finds each token back in the text it was given; a
character the vocabulary lacks (emoji, CJK Extension B) or one the tokenizer
rewrites (upper case, accents) can make that search fail or shift offsets.
Replacing every character one-for-one with a character the tokenizer keeps
as exactly one in-vocabulary character (or with a space) keeps
``len(normalized) == len(text)``, so model offsets are valid in the original
text too, and a chunk never has more tokens than characters.
"""

from __future__ import annotations

import unicodedata
from typing import Callable, Iterable

# Tried in order; the first one that is in the vocabulary is used.
LETTER_PLACEHOLDERS = ("某", "一", "x", "a")
DIGIT_PLACEHOLDERS = ("0", "０", "一")
SYMBOL_PLACEHOLDERS = ("，", ",", ".", "*", "#")
# Categories the tokenizer cannot see as text: surrogates, private use, unassigned.
_OPAQUE_CATEGORIES = frozenset(("Cs", "Co", "Cn"))
# Bounds memory if a client sends a large part of Unicode.
_CACHE_LIMIT = 65536


def bert_canonical(char: str, lowercase: bool = True) -> str:
    """What BERT's basic normaliser turns one character into (lower case, accents stripped)."""
    if not lowercase:
        return char
    decomposed = unicodedata.normalize("NFD", char.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


class TextNormalizer:
    """Maps text to same-length text made only of single-token vocabulary characters and spaces."""

    def __init__(
        self,
        vocab: Iterable[str],
        *,
        lowercase: bool = True,
        canonical: Callable[[str], str] | None = None,
    ) -> None:
        self._vocab = frozenset(token for token in vocab if len(token) == 1)
        self._canonical = canonical or (lambda char: bert_canonical(char, lowercase))
        self._cache: dict[str, str] = {}
        self.letter_placeholder = self._pick_placeholder(LETTER_PLACEHOLDERS)
        self.digit_placeholder = self._pick_placeholder(DIGIT_PLACEHOLDERS)
        self.symbol_placeholder = self._pick_placeholder(SYMBOL_PLACEHOLDERS)

    def _is_stable(self, char: str) -> bool:
        """True when the tokenizer keeps char as itself and knows it as one token."""
        return char in self._vocab and self._safe_canonical(char) == char

    def _safe_canonical(self, char: str) -> str:
        try:
            return self._canonical(char).strip()
        except Exception:  # a tokenizer normaliser may reject odd code points
            return ""

    def _pick_placeholder(self, candidates: tuple[str, ...]) -> str:
        for char in candidates:
            if self._is_stable(char):
                return char
        for char in sorted(self._vocab):
            if not char.isspace() and self._is_stable(char):
                return char
        raise ValueError("vocabulary has no single-character token usable as a placeholder")

    def _map_char(self, char: str) -> str:
        category = unicodedata.category(char)
        if category in _OPAQUE_CATEGORIES:
            return self.symbol_placeholder
        if char.isspace() or category in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            return " "
        canonical = self._safe_canonical(char)
        if len(canonical) == 1 and self._is_stable(canonical):
            return canonical
        if canonical == "" and category.startswith("M"):
            return " "  # a mark the tokenizer drops anyway
        if category.startswith("L") or category.startswith("M"):
            return self.letter_placeholder
        if category.startswith("N"):
            return self.digit_placeholder
        return self.symbol_placeholder

    def normalize_char(self, char: str) -> str:
        """One character in, exactly one character out."""
        mapped = self._cache.get(char)
        if mapped is None:
            mapped = self._map_char(char)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[char] = mapped
        return mapped

    def normalize(self, text: str) -> str:
        """Same-length text the tokenizer turns into at most one token per character."""
        return "".join(self.normalize_char(char) for char in text)
