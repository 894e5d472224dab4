"""Normalisation keeps every offset and leaves only characters the tokenizer knows."""

import random
import string

import pytest

from worker.textnorm import TextNormalizer

VOCAB = (
    {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##a"}
    | set(string.ascii_lowercase + string.digits + string.punctuation)
    | set("，。！？；：、“”『』％")
    | {chr(code) for code in range(0x4E00, 0xA000)}
)


@pytest.fixture(scope="module")
def normalizer() -> TextNormalizer:
    return TextNormalizer(VOCAB)


def test_text_in_vocab_is_unchanged(normalizer):
    assert normalizer.normalize("李强在北京, ok 123。") == "李强在北京, ok 123。"


def test_upper_case_latin_becomes_lower_case(normalizer):
    assert normalizer.normalize("苹果公司CEO库克在IPHONE发布会") == "苹果公司ceo库克在iphone发布会"


def test_upper_case_is_kept_when_the_tokenizer_does_not_lower_case():
    cased = TextNormalizer(VOCAB | set(string.ascii_uppercase), lowercase=False)
    assert cased.normalize("CEO") == "CEO"


def test_capital_letter_whose_lower_case_is_two_chars_stays_one_char(normalizer):
    assert normalizer.normalize("İstanbul") == "istanbul"


def test_accented_letter_becomes_its_base_letter(normalizer):
    assert normalizer.normalize("Café") == "cafe"


def test_emoji_becomes_the_symbol_placeholder(normalizer):
    assert normalizer.normalize("好😀") == "好" + normalizer.symbol_placeholder


def test_cjk_extension_b_becomes_the_letter_placeholder(normalizer):
    assert normalizer.normalize("王𠀀") == "王" + normalizer.letter_placeholder


def test_unknown_digit_becomes_the_digit_placeholder(normalizer):
    assert normalizer.normalize("٣") == normalizer.digit_placeholder


def test_whitespace_and_control_characters_become_spaces(normalizer):
    assert normalizer.normalize("a\tb\u3000c\x00d\u200be\n") == "a b c d e "


def test_lone_surrogate_becomes_the_symbol_placeholder(normalizer):
    assert normalizer.normalize("\ud800") == normalizer.symbol_placeholder


def test_placeholders_are_single_characters_from_the_vocabulary(normalizer):
    for placeholder in (normalizer.letter_placeholder, normalizer.digit_placeholder, normalizer.symbol_placeholder):
        assert len(placeholder) == 1 and placeholder in VOCAB


def test_length_is_preserved_for_any_unicode(normalizer):
    rng = random.Random(0)
    text = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(5000))
    assert len(normalizer.normalize(text)) == len(text)


def test_every_output_character_is_in_the_vocabulary_or_a_space(normalizer):
    rng = random.Random(1)
    text = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(5000))
    assert all(char == " " or char in VOCAB for char in normalizer.normalize(text))


def test_a_custom_canonical_function_decides_what_the_tokenizer_keeps():
    # A tokenizer that rewrites "a" to "b" must not be given "a": offsets would no longer line up.
    rewriting = TextNormalizer(VOCAB, canonical=lambda char: "b" if char == "a" else char.lower())
    assert rewriting.normalize("a") == "b"


def test_vocabulary_without_single_characters_is_rejected():
    with pytest.raises(ValueError):
        TextNormalizer({"[PAD]", "[UNK]", "##ab"})
