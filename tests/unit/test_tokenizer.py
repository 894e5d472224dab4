"""Our word-piece tokenizer gives exactly BertTokenizer's ids (slow and fast) on normalised text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.models import make_model_module
from worker.backends.tokenizer import WordPieceTokenizer, is_cjk, is_punctuation, split_into_words

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "lac-msra-lstm"  # the default model: is_split_into_words, lstm-crf
# Every shipped model; the lstm-crf ones go through ModelScope's own preprocessor, the bigru-crf one
# through the preprocessor type the service registers.
SHIPPED_MODELS = [SHIPPED, REPO / "models" / "lac-msra-bigru", REPO / "models" / "raner-msra-lstm"]
HOSTILE = [
    "苹果公司CEO库克在IPHONE发布会", "增长１２３％，达到45.6%『人民日报』", "İstanbul Café ǅ 한국어 Ωμέγα مرحبا",
    "x" * 300, "今天😀我们在北京🎉见面👍🏽", "abc def1234 ×2 ￥100 a.b.c", "[SEP]和[CLS]以及[UNK]",
    "北京\x00上海\x01\x7f广州\x1b", "北\u200b京\u200d上\ufeff海", "王𠀀和李𠀁在𪚥市", " \t\n\u3000 ", "a" * 101, "ab" * 50,
]  # fmt: skip


# Multi-character pieces exercise the longest-match rule, as a real BERT vocabulary would.
EXTRA_PIECES = ["ceo", "iphone", "##one", "ab", "##ab", "45", "##.6", "2019"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A vocabulary and tokenizer config as make_model writes them (no weights needed)."""
    make_model = make_model_module()
    root = tmp_path_factory.mktemp("vocab")
    vocab = make_model.build_vocab() + EXTRA_PIECES
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


def modelscope_encoding(preprocessor, text: str) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Ids, labelled token positions and word offsets from ModelScope's own NER preprocessor."""
    encodings, _ = preprocessor._tokenize_text(text)
    mask = encodings["label_mask"][0].tolist()
    offsets = encodings["offset_mapping"]
    offsets = offsets[0].tolist() if hasattr(offsets, "tolist") else offsets
    starts = [i for i, labelled in enumerate(mask) if labelled]
    return encodings["input_ids"][0].tolist(), starts, [tuple(o) for o in offsets[: len(starts)]]


def test_split_into_words_is_read_where_modelscope_reads_it(tmp_path):
    assert split_into_words(SHIPPED)
    cases = {
        "section": ({"preprocessor": {"type": "sequence-labeling-tokenizer", "is_split_into_words": True}}, {}, True),
        "val": ({"preprocessor": {"train": {}, "val": {"type": "x", "is_split_into_words": True}}}, {}, True),
        "tokenizer": ({"preprocessor": {"type": "sequence-labeling-tokenizer"}}, {"is_split_into_words": True}, True),
        "off": ({"preprocessor": {"type": "x", "is_split_into_words": False}}, {"is_split_into_words": True}, False),
        "absent": ({"preprocessor": {"type": "sequence-labeling-tokenizer"}}, {}, False),
    }
    for name, (configuration, tokenizer_config, expected) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "configuration.json").write_text(json.dumps(configuration))
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        assert split_into_words(directory) is expected, name
    assert split_into_words(tmp_path / "missing") is False


def test_split_into_words_gives_one_token_per_character(model_dir):
    vocab = WordPieceTokenizer.from_directory(model_dir).vocab
    tokenizer = WordPieceTokenizer(vocab, add_special_tokens=False, split_into_words=True)
    encoding = tokenizer.encode("iphone 45.6李强")  # word-piece mode: "iphone", "45", ".", "6"
    assert encoding.ids == [vocab[c] for c in "iphone"] + [tokenizer.unk_id] + [vocab[c] for c in "45.6李强"]
    assert encoding.word_starts == list(range(13))
    assert encoding.word_offsets == [(i, i + 1) for i in range(13)]


@pytest.mark.parametrize("shipped", SHIPPED_MODELS, ids=lambda path: path.name)
def test_split_into_words_ids_equal_modelscope_on_the_shipped_models(shipped):
    """Ids, labelled positions and offsets as the model's ModelScope preprocessor gives them."""
    from modelscope.preprocessors import Preprocessor

    from tests.support.msra import msra_test_sentences
    from worker.backends.bigru_crf import register

    register()
    preprocessor = Preprocessor.from_pretrained(str(shipped), sequence_length=128, use_fast=True, padding=False)
    tokenizer = WordPieceTokenizer.from_directory(shipped, add_special_tokens=False)
    assert tokenizer.split_into_words
    normalizer = tokenizer.normalizer()
    extra = HOSTILE + [
        "苹果公司CEO库克在iPhone 15发布会上说，增长１２３％，达到45.6%。",
        "G20峰会于2016年9月在杭州举行",
    ]
    texts = [normalizer.normalize(text)[:126] for text in msra_test_sentences() + extra]  # chunks are <= 126
    mismatches = [text for text in texts if modelscope_encoding(preprocessor, text) != astuple(tokenizer.encode(text))]
    assert mismatches == []
    # Without the flag these texts would differ (word pieces over digit and Latin runs).
    words = WordPieceTokenizer(tokenizer.vocab, add_special_tokens=False)
    assert sum(words.encode(text).ids != tokenizer.encode(text).ids for text in texts) > 100


def test_split_into_words_with_special_tokens_follows_modelscope_prompt_separator(tmp_path):
    """A cased transformer model: [CLS]/[SEP] around the characters, a literal "[SEP]" ends the labels."""
    from modelscope.preprocessors import Preprocessor

    make_model = make_model_module()
    labels = make_model.bies_labels()
    vocab = make_model.build_vocab() + EXTRA_PIECES + ["A", "B", "S", "E", "P"]
    directory = tmp_path / "raner-cased-chars"
    directory.mkdir()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({**make_model.tokenizer_config_json(),
                                                                 "do_lower_case": False}))  # fmt: skip
    configuration = make_model.configuration_json(labels)
    configuration["preprocessor"]["is_split_into_words"] = True
    (directory / "configuration.json").write_text(json.dumps(configuration))
    (directory / "config.json").write_text(json.dumps(make_model.config_json("bert", len(vocab), labels)))
    preprocessor = Preprocessor.from_pretrained(str(directory), sequence_length=128, use_fast=True, padding=False)
    tokenizer = WordPieceTokenizer.from_directory(directory)
    normalizer = tokenizer.normalizer()
    texts = ["AB[SEP]李强AB", "李强 在 北京ceo 45.6", "[SEP]", "ab[SEP]cd[SEP]ef", "[CLS]x[UNK]", "iphone 2019"]
    for text in texts + HOSTILE:
        normalized = normalizer.normalize(text)[:126]
        assert modelscope_encoding(preprocessor, normalized) == astuple(tokenizer.encode(normalized)), text
    assert tokenizer.encode("AB[SEP]李强").word_offsets == [(0, 1), (1, 2)]


def astuple(encoding) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    return encoding.ids, encoding.word_starts, encoding.word_offsets
