"""Vocabulary and character ids, computed through the same tokenizer and normaliser that serve."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from worker.textnorm import TextNormalizer, bert_canonical

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID = 0, 1
# Characters kept even if training never shows them, so the normaliser keeps them as themselves.
ALWAYS_KEPT = (
    "".join(chr(code) for code in range(0x21, 0x7F))
    + "".join(chr(code) for code in range(0xFF01, 0xFF5F))
    + "，。、；：？！“”‘’（）《》〈〉【】『』「」〔〕—…·～￥％＃＠＆＊＋－＝／＼｜＜＞［］｛｝•°±×÷→←↑↓※§№℃"
)


def char_counts(texts: Iterable[str]) -> Counter[str]:
    """Counts of characters as the tokenizer sees them (lower case, accents stripped)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for char in text:
            canonical = bert_canonical(char)
            if len(canonical) == 1 and not canonical.isspace():
                counts[canonical] += 1
    return counts


def build_vocab(counts: Counter[str]) -> list[str]:
    """Special tokens, then every seen character by frequency, then the always-kept ones."""
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for char, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if char not in seen:
            seen.add(char)
            vocab.append(char)
    for char in ALWAYS_KEPT:
        canonical = bert_canonical(char)
        if len(canonical) == 1 and canonical not in seen:
            seen.add(canonical)
            vocab.append(canonical)
    return vocab


def rare_ids(vocab: list[str], counts: Counter[str], min_count: int) -> list[int]:
    """Ids of tokens seen fewer than min_count times: they are trained, and shipped, as [UNK]."""
    return [i for i, token in enumerate(vocab) if token not in SPECIAL_TOKENS and counts.get(token, 0) < min_count]


class CharEncoder:
    """Character -> token id exactly as the served model gets it: normaliser, then one token per char."""

    def __init__(self, model_dir: Path, rare: Iterable[int] = ()) -> None:
        from transformers import BertTokenizerFast

        self._tokenizer = BertTokenizerFast.from_pretrained(str(model_dir))
        canonical = self._tokenizer.backend_tokenizer.normalizer.normalize_str
        self._normalizer = TextNormalizer(self._tokenizer.get_vocab(), lowercase=True, canonical=canonical)
        self._rare = frozenset(rare)
        self._cache: dict[str, int] = {}

    def served_id(self, char: str) -> int:
        """The id the pipeline feeds the model for this character."""
        token_id = self._cache.get(char)
        if token_id is None:
            ids = self._tokenizer.encode(self._normalizer.normalize_char(char), add_special_tokens=False)
            token_id = ids[0] if ids else self._tokenizer.unk_token_id
            self._cache[char] = token_id
        return token_id

    def training_id(self, char: str) -> int:
        """The id used in training: rare characters become [UNK], as their shipped rows will be."""
        token_id = self.served_id(char)
        return UNK_ID if token_id in self._rare else token_id

    def encode(self, chars: Iterable[str], *, training: bool = True) -> list[int]:
        pick = self.training_id if training else self.served_id
        return [pick(char) for char in chars]
