"""BERT word-piece ids and word offsets for normalised text, without loading transformers.

The fast path needs, per chunk, the ids BertTokenizer would give and where
each word starts, at a few microseconds per character. Input is text that
`TextNormalizer` already made of single-token vocabulary characters and
spaces, so BERT's normaliser is the identity on it and only the
pre-tokeniser (whitespace, punctuation, CJK characters) and the greedy
longest-match word-piece step remain.

A model whose preprocessor says `is_split_into_words` (character models such
as the shipped lstm-crf one) is tokenised differently by ModelScope: every
character, space included, is a word of its own, encoded alone (a space
encodes to nothing and becomes `[UNK]`), so digit and Latin runs are never
joined into word pieces. `WordPieceTokenizer(split_into_words=True)` gives
those ids.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from worker.textnorm import TextNormalizer

MAX_CHARS_PER_WORD = 100  # BertTokenizer's max_input_chars_per_word: longer words are [UNK]
# Code point blocks BERT treats as CJK characters (each one is a word of its own).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip


def is_cjk(char: str) -> bool:
    """BERT's _is_chinese_char."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """BERT's punctuation: all ASCII non-alphanumeric printables plus Unicode P* categories."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def split_into_words(model_dir: Path) -> bool:
    """Whether ModelScope's preprocessor tokenises this directory's input one character per word.

    Read where ModelScope reads it: the inference preprocessor's config in
    configuration.json (the `preprocessor` section itself when it has a
    `type`, else its `val` sub-section), then the tokenizer's own init
    kwargs (tokenizer_config.json).
    """
    model_dir = Path(model_dir)
    section = _read_json(model_dir / "configuration.json").get("preprocessor")
    if isinstance(section, dict) and "type" not in section and isinstance(section.get("val"), dict):
        section = section["val"]
    if isinstance(section, dict) and "is_split_into_words" in section:
        return bool(section["is_split_into_words"])
    return bool(_read_json(model_dir / "tokenizer_config.json").get("is_split_into_words", False))


def load_vocab(path: Path) -> dict[str, int]:
    """vocab.txt as BertTokenizer reads it: one token per line, a later duplicate wins."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            vocab[line.rstrip("\n")] = index
    return vocab


@dataclass(frozen=True, slots=True)
class Encoding:
    """Token ids of one chunk and, per word, its first token's index and its character span."""

    ids: list[int]
    word_starts: list[int]
    word_offsets: list[tuple[int, int]]


class WordPieceTokenizer:
    """BertTokenizer's ids for text made only of stable vocabulary characters and spaces."""

    def __init__(
        self,
        vocab: dict[str, int],
        *,
        lowercase: bool = True,
        add_special_tokens: bool = True,
        canonical: Callable[[str], str] | None = None,
        split_into_words: bool = False,
    ) -> None:
        self.vocab = vocab
        self.lowercase = lowercase
        self.add_special_tokens = add_special_tokens
        self.split_into_words = split_into_words
        self._canonical = canonical
        self.unk_id = vocab["[UNK]"]
        self.cls_id = vocab.get("[CLS]", self.unk_id)
        self.sep_id = vocab.get("[SEP]", self.unk_id)
        self.pad_id = vocab.get("[PAD]", 0)
        self._char_class: dict[str, int] = {}
        self._word_cache: dict[str, list[int]] = {}

    @classmethod
    def from_directory(cls, model_dir: Path, *, add_special_tokens: bool = True) -> WordPieceTokenizer:
        """Vocabulary, casing and word splitting from a RaNER directory's vocab.txt and configs."""
        model_dir = Path(model_dir)
        settings = _read_json(model_dir / "tokenizer_config.json")
        lowercase = bool(settings.get("do_lower_case", True))
        strip_accents = settings.get("strip_accents")
        return cls(
            load_vocab(model_dir / "vocab.txt"),
            lowercase=lowercase,
            add_special_tokens=add_special_tokens,
            canonical=bert_normalizer(lowercase, strip_accents, bool(settings.get("tokenize_chinese_chars", True))),
            split_into_words=split_into_words(model_dir),
        )

    def normalizer(self) -> TextNormalizer:
        """The TextNormalizer the reference backend builds for the same tokenizer."""
        return TextNormalizer(self.vocab, lowercase=self.lowercase, canonical=self._canonical)

    def _class(self, char: str) -> int:
        """0 space, 1 a word by itself (CJK, punctuation), 2 part of a run."""
        kind = self._char_class.get(char)
        if kind is None:
            if char.isspace():
                kind = 0
            elif is_cjk(char) or is_punctuation(char):
                kind = 1
            else:
                kind = 2
            if len(self._char_class) < 65536:
                self._char_class[char] = kind
        return kind

    def words(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each pre-tokenised word."""
        words: list[tuple[int, int]] = []
        run_start = -1
        for position, char in enumerate(text):
            kind = self._class(char)
            if kind == 2:
                if run_start < 0:
                    run_start = position
                continue
            if run_start >= 0:
                words.append((run_start, position))
                run_start = -1
            if kind == 1:
                words.append((position, position + 1))
        if run_start >= 0:
            words.append((run_start, len(text)))
        return words

    def word_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first word pieces; one [UNK] if any part has no piece."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        ids = self._word_pieces(word)
        if len(self._word_cache) < 65536:
            self._word_cache[word] = ids
        return ids

    def _word_pieces(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_id]
        vocab = self.vocab
        single = vocab.get(word)
        if single is not None:
            return [single]
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            piece_id = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                piece_id = vocab.get(piece)
                if piece_id is not None:
                    break
                end -= 1
            if piece_id is None:
                return [self.unk_id]
            ids.append(piece_id)
            start = end
        return ids

    def encode(self, text: str) -> Encoding:
        """Ids with [CLS]/[SEP] when the model uses them, and where each word's first token is."""
        if self.split_into_words:
            return self._encode_characters(text)
        ids: list[int] = [self.cls_id] if self.add_special_tokens else []
        starts: list[int] = []
        offsets = self.words(text)
        vocab = self.vocab
        for start, end in offsets:
            starts.append(len(ids))
            if end - start == 1:
                token = vocab.get(text[start])
                if token is not None:
                    ids.append(token)
                    continue
            ids.extend(self.word_ids(text[start:end]))
        if self.add_special_tokens:
            ids.append(self.sep_id)
        return Encoding(ids, starts, offsets)

    def _encode_characters(self, text: str) -> Encoding:
        """ModelScope's is_split_into_words inference encoding: one word and one token per character.

        Each character is encoded alone; one that encodes to nothing (a space)
        becomes [UNK]. Models with [CLS]/[SEP] (not lstm) also get ModelScope's
        prompt separator rule: a literal "[SEP]" in the text is one [SEP]
        token, and no character from it on is labelled.
        """
        vocab, unk = self.vocab, self.unk_id
        ids: list[int] = [self.cls_id] if self.add_special_tokens else []
        separator = text.find("[SEP]") if self.add_special_tokens else -1
        before = text if separator < 0 else text[:separator]
        ids.extend(unk if char.isspace() else vocab.get(char, unk) for char in before)
        words = len(before)
        if separator >= 0:
            ids.append(self.sep_id)
            ids.extend(unk if char.isspace() else vocab.get(char, unk) for char in text[separator + 5 :])
        if self.add_special_tokens:
            ids.append(self.sep_id)
        first = 1 if self.add_special_tokens else 0
        return Encoding(ids, list(range(first, first + words)), [(i, i + 1) for i in range(words)])


def bert_normalizer(lowercase: bool, strip_accents: bool | None, chinese_chars: bool) -> Callable[[str], str]:
    """The fast tokenizer's own normaliser (what the reference pipeline's tokenizer applies)."""
    from tokenizers.normalizers import BertNormalizer

    normalizer = BertNormalizer(
        clean_text=True, handle_chinese_chars=chinese_chars, strip_accents=strip_accents, lowercase=lowercase
    )
    return normalizer.normalize_str
