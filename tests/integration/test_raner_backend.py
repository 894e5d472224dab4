"""The RaNER backend answers every text with valid entities, on the real ModelScope pipeline.

The generated models have random weights, so these tests check properties
(offsets, types, order, no crash), never which entities are found.
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path

import numpy as np
import pytest

from tests.support.models import make_model_module
from worker.backends import BackendError, NerBackend, load_backend
from worker.backends.base import PROBE_TEXT
from worker.backends.raner import RanerBackend
from worker.chunking import split_text
from worker.entities import ENTITY_TYPES, Entity
from worker.textnorm import TextNormalizer

NEWS = "新华社北京三月五日电，国务院总理李强在人民大会堂作政府工作报告。上海市和广东省代表团审议了报告；联合国秘书长古特雷斯表示欢迎！"
AWKWARD_TEXTS = {
    "emoji": "今天😀我们在北京🎉见面👍🏽",
    "cjk_extension_b": "王𠀀和李𠀁在𪚥市",
    "upper_case_latin": "苹果公司CEO库克在IPHONE发布会",
    "digits_and_fullwidth": "增长１２３％，达到45.6%『人民日报』",
    "whitespace_only": " \t\n\u3000 ",
    "mixed_whitespace": "北京\t上海\n\n广州\u3000深圳  香港\r\n",
    "single_char": "李",
    "control_chars": "北京\x00上海\x01\x7f广州\x1b",
    "zero_width": "北\u200b京\u200d上\ufeff海",
    "accents_and_other_scripts": "İstanbul Café ǅ 한국어 Ωμέγα مرحبا",
    "lone_surrogate": "北京\ud800上海",
    "private_use_and_unassigned": "北京\ue000\U000e0001\U0010ffff上海",
    "long_latin_word": "x" * 300,
}


def assert_valid(text: str, entities: list[Entity]) -> None:
    for entity in entities:
        assert type(entity.start) is int and type(entity.end) is int and type(entity.span) is str
        assert 0 <= entity.start < entity.end <= len(text)
        assert text[entity.start : entity.end] == entity.span
        assert entity.type in ENTITY_TYPES
    assert all(a.end <= b.start for a, b in zip(entities, entities[1:]))


@pytest.fixture(scope="module")
def make_model():
    return make_model_module()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, make_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for model_type in ("bert", "structbert"):
        dirs[model_type] = root / f"raner-{model_type}"
        make_model.make_model(dirs[model_type], model_type=model_type, seed=0)
    return dirs


@pytest.fixture(scope="module")
def backend(model_dirs) -> RanerBackend:
    return load_backend("raner", model_dirs["bert"], name=None, version=None, torch_threads=1)


# --- the generated model directory -------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["bert", "structbert"])
def test_generated_model_loads_with_the_unchanged_modelscope_pipeline(model_dirs, model_type):
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    ner = pipeline(Tasks.named_entity_recognition, model=str(model_dirs[model_type]), device="cpu")
    output = ner("这与温岭市新河镇的一个神秘的传说有关。")["output"]
    assert isinstance(output, list)
    assert {item["type"] for item in output} <= set(ENTITY_TYPES)


def test_generated_model_readme_says_entities_are_random(model_dirs):
    assert "random and not meaningful" in (model_dirs["bert"] / "README.md").read_text(encoding="utf-8")


def test_make_model_keeps_a_complete_directory(model_dirs, make_model, capsys):
    weights = model_dirs["bert"] / "pytorch_model.bin"
    before = weights.stat().st_mtime_ns
    assert make_model.main([str(model_dirs["bert"])]) == 0
    assert weights.stat().st_mtime_ns == before
    assert "kept" in capsys.readouterr().out


def test_make_model_vocab_is_deterministic(make_model):
    assert make_model.build_vocab() == make_model.build_vocab()
    assert len(set(make_model.build_vocab())) == len(make_model.build_vocab())


# --- the real backend ----------------------------------------------------------------------------


def test_backend_satisfies_the_backend_protocol(backend):
    assert isinstance(backend, NerBackend)


def test_structbert_model_loads_and_predicts(model_dirs):
    structbert = load_backend("raner", model_dirs["structbert"], name=None, version=None, torch_threads=1)
    [entities] = structbert.predict_batch([NEWS])
    assert_valid(NEWS, entities)


def test_name_defaults_to_the_directory_name(backend, model_dirs):
    assert backend.name == model_dirs["bert"].name


def test_version_defaults_to_the_weights_sha256_prefix(backend, model_dirs):
    digest = hashlib.sha256((model_dirs["bert"] / "pytorch_model.bin").read_bytes()).hexdigest()
    assert backend.version == digest[:12]


def test_name_and_version_can_be_given(model_dirs):
    named = load_backend("raner", model_dirs["bert"], name="raner-news", version="v7", torch_threads=1)
    assert (named.name, named.version) == ("raner-news", "v7")


def test_probe_passes_on_a_loaded_model(backend):
    backend.probe()


def test_long_text_entities_have_valid_offsets(backend):
    text = (NEWS * 20)[:1000]
    [entities] = backend.predict_batch([text])
    assert_valid(text, entities)


def test_long_text_is_predicted_past_the_model_window(backend):
    text = (NEWS * 20)[:1000]
    [entities] = backend.predict_batch([text])
    assert max(entity.end for entity in entities) > 900


@pytest.mark.parametrize("text", AWKWARD_TEXTS.values(), ids=AWKWARD_TEXTS.keys())
def test_awkward_text_gives_valid_entities(backend, text):
    [entities] = backend.predict_batch([text])
    assert_valid(text, entities)


def test_whitespace_only_text_has_no_entities(backend):
    assert backend.predict_batch([AWKWARD_TEXTS["whitespace_only"]]) == [[]]


def test_empty_text_has_no_entities(backend):
    assert backend.predict_batch([""]) == [[]]


def test_awkward_texts_together_in_one_batch_give_valid_entities(backend):
    texts = list(AWKWARD_TEXTS.values())
    for text, entities in zip(texts, backend.predict_batch(texts)):
        assert_valid(text, entities)


def test_predict_batch_answers_each_text_in_order(backend):
    texts = [NEWS[i : i + 50] for i in range(0, 40, 4)] + [NEWS * 3, "李"]
    assert backend.predict_batch(texts) == [backend.predict_batch([text])[0] for text in texts]


def test_empty_batch_gives_empty_result(backend):
    assert backend.predict_batch([]) == []


def test_normalized_chunks_fit_the_model_window(backend):
    tokenizer = backend._pipeline.preprocessor.nlp_tokenizer.tokenizer
    text = "".join(AWKWARD_TEXTS.values()) * 3 + "ﬁﬂ ǄǅǆǇ ẞ ŉ ΐ 𝔘𝔫𝔦 ⅻ ① ㍿ 한국어" * 10
    for chunk in split_text(text, 126, 20):
        normalized = backend._normalizer.normalize(chunk.text)
        assert len(normalized) == len(chunk.text)
        assert len(tokenizer(normalized, add_special_tokens=False)["input_ids"]) <= 126


def test_missing_model_directory_raises_backend_error(tmp_path):
    with pytest.raises(BackendError):
        load_backend("raner", tmp_path / "absent", name=None, version=None, torch_threads=1)


def test_unknown_backend_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown NER backend"):
        load_backend("spacy", tmp_path, name=None, version=None, torch_threads=1)


# --- offset mapping, with a stub pipeline that returns ModelScope-shaped output -----------------

STUB_VOCAB = set(string.ascii_lowercase + string.digits + string.punctuation + "，。！？；") | {
    chr(code) for code in range(0x4E00, 0xA000)
}


class StubPipeline:
    """Tags every run of non-space characters (at most 3 long) as an entity, like ModelScope would."""

    def __init__(self, label: str = "PER", fail_when=lambda text: False):
        self.label = label
        self.fail_when = fail_when
        self.calls: list[str] = []

    def __call__(self, text: str) -> dict:
        self.calls.append(text)
        if self.fail_when(text):
            raise ValueError("substring not found")
        output, position = [], 0
        while position < len(text):
            if text[position].isspace():
                position += 1
                continue
            end = position
            while end < len(text) and not text[end].isspace() and end - position < 3:
                end += 1
            output.append({
                "type": self.label, "start": np.int64(position), "end": np.int64(end),
                "prob": np.float32(0.9), "span": text[position:end],
            })  # fmt: skip
            position = end
        return {"output": output}


def stub_backend(pipeline, **kwargs) -> RanerBackend:
    return RanerBackend(pipeline, name="stub", version="0", normalizer=TextNormalizer(STUB_VOCAB), **kwargs)


def test_stub_offsets_become_plain_ints_and_spans_come_from_the_original_text():
    text = "苹果CEO😀在𠀀市"
    [entities] = stub_backend(StubPipeline()).predict_batch([text])
    assert [e.to_dict() for e in entities] == [
        {"type": "PER", "start": 0, "end": 3, "span": "苹果C"},
        {"type": "PER", "start": 3, "end": 6, "span": "EO😀"},
        {"type": "PER", "start": 6, "end": 9, "span": "在𠀀市"},
    ]
    assert all(type(e.start) is int and type(e.end) is int for e in entities)


def test_stub_pipeline_sees_only_normalized_text():
    pipeline = StubPipeline()
    stub_backend(pipeline).predict_batch(["苹果CEO😀"])
    assert pipeline.calls == ["苹果ceo，"]


@pytest.mark.parametrize(("label", "expected"), [("NR", "PER"), ("ns", "LOC"), ("NT", "ORG"), ("org", "ORG")])
def test_stub_labels_of_other_tag_sets_map_to_per_loc_org(label, expected):
    [entities] = stub_backend(StubPipeline(label=label)).predict_batch(["北京"])
    assert [e.type for e in entities] == [expected]


def test_stub_labels_outside_per_loc_org_are_dropped():
    assert stub_backend(StubPipeline(label="MISC")).predict_batch(["北京"]) == [[]]


def test_stub_entities_with_impossible_offsets_are_dropped():
    def bad(text):
        return {"output": [
            {"type": "PER", "start": 5, "end": 99, "span": ""},
            {"type": "PER", "start": 2, "end": 1, "span": ""},
            {"type": "PER", "start": 0.5, "end": 1, "span": ""},
            {"type": "PER", "start": 0, "end": 1, "span": "wrong"},
            {"type": "LOC", "start": 0, "end": 2, "span": text[0:2]},
        ]}  # fmt: skip

    assert stub_backend(bad).predict_batch(["北京"]) == [[Entity("LOC", 0, 2, "北京")]]


def test_stub_entity_edges_never_land_on_replaced_control_characters():
    def whole_text(text):
        return {"output": [{"type": "PER", "start": 0, "end": len(text), "span": text}]}

    [entities] = stub_backend(whole_text).predict_batch(["\x00李强\x01"])
    assert entities == [Entity("PER", 1, 3, "李强")]


def test_stub_whitespace_only_chunks_are_never_sent_to_the_pipeline():
    pipeline = StubPipeline()
    stub_backend(pipeline).predict_batch(["   ", "\x00\u200b", ""])
    assert pipeline.calls == []


def test_stub_every_character_of_a_long_text_reaches_the_pipeline():
    pipeline = StubPipeline()
    text = (NEWS * 30)[:2000]
    [entities] = stub_backend(pipeline).predict_batch([text])
    assert all(len(call) <= 126 for call in pipeline.calls)
    covered = {i for e in entities for i in range(e.start, e.end)}
    assert covered == set(range(len(text)))
    assert_valid(text, entities)


def test_stub_chunk_that_makes_the_pipeline_raise_is_retried_in_pieces():
    pipeline = StubPipeline(fail_when=lambda text: "我" in text and len(text) > 1)
    [entities] = stub_backend(pipeline).predict_batch(["我在北京工作"])
    assert_valid("我在北京工作", entities)
    assert {i for e in entities for i in range(e.start, e.end)} == set(range(6))


def test_stub_batch_pipeline_failure_falls_back_to_text_by_text():
    def broken_batch(texts, batch_size):
        raise RuntimeError("Sizes of tensors must match")

    backend = stub_backend(StubPipeline(), batch_pipeline=broken_batch)
    texts = [NEWS, NEWS[::-1]]
    results = backend.predict_batch(texts)
    assert [len(r) for r in results] == [len(stub_backend(StubPipeline()).predict_batch([t])[0]) for t in texts]


def test_stub_model_that_always_fails_raises_backend_error():
    backend = stub_backend(StubPipeline(fail_when=lambda text: True))
    with pytest.raises(BackendError):
        backend.predict_batch([NEWS])


def test_stub_probe_raises_backend_error_when_the_model_fails():
    with pytest.raises(BackendError):
        stub_backend(StubPipeline(fail_when=lambda text: text == PROBE_TEXT)).probe()
