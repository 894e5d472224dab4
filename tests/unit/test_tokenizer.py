"""Our word-piece tokenizer gives exactly BertTokenizer's ids (slow and fast) on normalised text."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from worker.backends.tokenizer import WordPieceTokenizer, is_cjk, is_punctuation

REPO = Path(__file__).resolve().parents[2]
HOSTILE = [
    "苹果公司CEO库克在IPHONE发布会", "增长１２３％，达到45.6%『人民日报』", "İstanbul Café ǅ 한국어 Ωμέγα مرحبا",
    "x" * 300, "今天😀我们在北京🎉见面👍🏽", "abc def1234 ×2 ￥100 a.b.c", "[SEP]和[CLS]以及[UNK]",
    "北京\x00上海\x01\x7f广州\x1b", "北\u200b京\u200d上\ufeff海", "王𠀀和李𠀁在𪚥市", " \t\n\u3000 ", "a" * 101, "ab" * 50,
]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A vocabulary and tokenizer config as make_model writes them (no weights needed)."""
    spec = importlib.util.spec_from_file_location("make_model", REPO / "scripts" / "make_model.py")
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    root = tmp_path_factory.mktemp("vocab")
    # Multi-character pieces exercise the longest-match rule, as a real BERT vocabulary would.
    vocab = make_model.build_vocab() + ["ceo", "iphone", "##one", "ab", "##ab", "45", "##.6", "2019"]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (root / "tokenizer_config.json").write_text(json.dumps(make_model.tokenizer_config_json()))
    return root


@pytest.fixture(scope="module")
def ours(model_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_directory(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    from transformers import BertTokenizer, BertTokenizerFast

    return BertTokenizer.from_pretrained(str(model_dir)), BertTokenizerFast.from_pretrained(str(model_dir))


def test_ids_equal_bert_tokenizer_on_the_whole_msra_test_split_and_hostile_text(ours, reference):
    from tests.support.msra import msra_test_sentences

    slow, fast = reference
    normalizer = ours.normalizer()
    texts = [normalizer.normalize(text) for text in msra_test_sentences() + HOSTILE]
    assert len(texts) == 5000 + len(HOSTILE)
    fast_ids = fast(texts)["input_ids"]
    mismatches = [text for text, expected in zip(texts, fast_ids) if ours.encode(text).ids != expected]
    assert mismatches == []
    assert all(ours.encode(text).ids == slow(text)["input_ids"] for text in texts[::50] + texts[5000:])


def test_word_offsets_and_first_tokens_match_the_fast_tokenizer_words(ours, reference):
    _, fast = reference
    normalizer = ours.normalizer()
    for text in HOSTILE + ["新华社北京电，国务院总理李强在人民大会堂会见了联合国秘书长。"]:
        normalized = normalizer.normalize(text)
        encoding = ours.encode(normalized)
        hf = fast(normalized, return_offsets_mapping=True)
        word_ids = hf.word_ids()
        firsts = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
        assert encoding.word_starts == firsts
        for word, first in zip(range(len(firsts)), firsts):
            last = max(i for i, w in enumerate(word_ids) if w == word)
            assert encoding.word_offsets[word] == (hf["offset_mapping"][first][0], hf["offset_mapping"][last][1])


def test_lstm_models_get_no_special_tokens(model_dir):
    tokenizer = WordPieceTokenizer.from_directory(model_dir, add_special_tokens=False)
    encoding = tokenizer.encode("李强在北京")
    assert len(encoding.ids) == 5 and encoding.word_starts == [0, 1, 2, 3, 4]


def test_long_runs_become_one_unknown_token(ours):
    assert ours.encode("a" * 101).ids == [ours.cls_id, ours.unk_id, ours.sep_id]
    assert ours.encode("ceo").ids[1:-1] == [ours.vocab["ceo"]]
    assert ours.encode("iphone").ids[1:-1] == [ours.vocab["iphone"]]


def test_character_classes_follow_bert():
    assert is_cjk("中") and is_cjk("𠀀") and not is_cjk("a") and not is_cjk("，")
    assert is_punctuation("，") and is_punctuation("$") and is_punctuation("『") and not is_punctuation("×")
