"""The onnx backend tags exactly like the reference ModelScope pipeline, from the same directory.

Generated random-weight models of all three kinds (transformer-crf with a
BERT or a StructBERT encoder, lstm-crf), and the shipped default model
(trained lstm-crf, one token per character: `is_split_into_words`); the
reference is the `raner` backend, one text per pipeline call. Random weights
make near-ties common, so equality here is a strict test of tokenisation,
emission positions and decoding.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.models import make_three_kinds
from tests.support.msra import msra_test_sentences
from worker.backends import build_backend, load_backend, onnx_export
from worker.backends.fast import FastBackend
from worker.backends.raner import RanerBackend
from worker.config import WorkerConfig
from worker.entities import ENTITY_TYPES, Entity

REPO = Path(__file__).resolve().parents[2]
SAMPLE = 80  # MSRA test sentences per model; docs/BENCHMARKS.md has the full split
# The shipped models (is_split_into_words): the default (lstm-crf), its bigru-crf teacher, the earlier default.
SHIPPED_MODELS = [REPO / "models" / name for name in ("lac-msra-lstm", "lac-msra-bigru", "raner-msra-lstm")]
SHIPPED_SAMPLE = 300
# Digits, Latin letters and mixed case: where word pieces and one-token-per-character differ.
MIXED = [
    "苹果公司CEO库克在iPhone 15发布会上说，今年营收增长１２３％，达到3945.6亿美元。",
    "G20峰会于2016年9月4日在杭州举行，IMF总裁拉加德和WTO总干事阿泽维多出席。",
    "NBA球星LeBron James与耐克公司签约，UNESCO驻华代表处和BBC记者在北京报道。",
    "张三（Zhang San）在ABC Company工作，电话13800138000，邮箱zhangsan@example.com。",
    "中国移动5G用户突破1亿，华为Mate 60 Pro在深圳发布；微软Microsoft和IBM也在上海设立了研究院。",
    "1997年7月1日香港回归，COVID-19疫情期间WHO总干事谭德塞访问了武汉市。",
    "mixedCASE和ALLCAPS以及lowercase文字，A股B股H股，3M公司，7-Eleven便利店在广州。",
]  # fmt: skip
NEWS = [
    "新华社北京三月五日电，国务院总理李强在人民大会堂作政府工作报告。上海市和广东省代表团审议了报告；联合国秘书长古特雷斯表示欢迎！",
    "苹果公司CEO库克在IPHONE发布会上说，增长１２３％，达到45.6%。",
    "据《人民日报》报道，" * 30,  # several chunks
]  # fmt: skip
HOSTILE = [
    "今天😀我们在北京🎉见面👍🏽", "王𠀀和李𠀁在𪚥市", " \t\n\u3000 ", "北京\t上海\n\n广州\u3000深圳  香港\r\n", "李",
    "北京\x00上海\x01\x7f广州\x1b", "北\u200b京\u200d上\ufeff海", "İstanbul Café ǅ 한국어 Ωμέγα مرحبا",
    "北京\ue000\U000e0001\U0010ffff上海", "x" * 300, "张" * 1000, "。" * 200, "a1" * 80,
]  # fmt: skip


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    return make_three_kinds(tmp_path_factory.mktemp("fast-models"), seeds=(1, 2, 3))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def fast(dirs, cache_dir) -> dict[str, FastBackend]:
    backends = {kind: FastBackend.from_directory(path, cache_dir=cache_dir, threads=1) for kind, path in dirs.items()}
    yield backends
    for backend in backends.values():
        backend.close()


def assert_valid(text: str, entities: list[Entity]) -> None:
    for entity in entities:
        assert type(entity.start) is int and type(entity.end) is int
        assert 0 <= entity.start < entity.end <= len(text)
        assert text[entity.start : entity.end] == entity.span
        assert entity.type in ENTITY_TYPES
    assert all(a.end <= b.start for a, b in zip(entities, entities[1:]))


@pytest.mark.parametrize("kind", ["bert", "structbert", "lstm"])
def test_fp32_entities_equal_the_reference_pipeline(kind, dirs, fast):
    texts = msra_test_sentences()[:SAMPLE] + NEWS
    reference = RanerBackend.from_directory(dirs[kind])
    expected = [reference.predict_batch([text])[0] for text in texts]  # one text per pipeline call
    got = fast[kind].predict_batch(texts)  # all at once: padded, length-bucketed batches
    differing = [text for text, a, b in zip(texts, expected, got) if a != b]
    assert differing == []
    assert sum(map(len, got)) > len(texts)  # random weights tag plenty: the comparison is not vacuous


@pytest.mark.parametrize("shipped", SHIPPED_MODELS, ids=lambda path: path.name)
def test_shipped_model_fp32_entities_equal_the_reference_pipeline(shipped, cache_dir):
    """The shipped models read one token per character: digits and Latin runs are not word pieces."""
    from tests.support.msra import read_split

    texts = [text for text, _ in read_split()[:SHIPPED_SAMPLE]] + MIXED + NEWS
    reference = RanerBackend.from_directory(shipped)
    expected = [reference.predict_batch([text])[0] for text in texts]  # one text per pipeline call
    backend = FastBackend.from_directory(shipped, cache_dir=cache_dir, threads=1)
    try:
        assert backend._tokenizer.split_into_words
        got = backend.predict_batch(texts)
    finally:
        backend.close()
    differing = [text for text, a, b in zip(texts, expected, got) if a != b]
    assert differing == []
    assert sum(map(len, got[:SHIPPED_SAMPLE])) > SHIPPED_SAMPLE // 3  # a trained model finds entities: not vacuous
    assert all(got[len(texts) - len(NEWS) - len(MIXED) + i] for i in range(len(MIXED)))


@pytest.mark.parametrize("kind", ["bert", "lstm"])
def test_offsets_are_valid_on_hostile_text(kind, fast):
    results = fast[kind].predict_batch(HOSTILE)
    assert len(results) == len(HOSTILE)
    for text, entities in zip(HOSTILE, results):
        assert_valid(text, entities)
    assert results[2] == []  # whitespace only


def test_int8_answers_valid_entities(dirs, cache_dir):
    backend = FastBackend.from_directory(dirs["bert"], cache_dir=cache_dir, quantize="int8", threads=1)
    for text, entities in zip(HOSTILE + NEWS, backend.predict_batch(HOSTILE + NEWS)):
        assert_valid(text, entities)
    assert (cache_dir / "onnx").glob("*/model.int8.onnx")
    backend.close()


def test_concurrent_requests_get_the_answers_they_would_get_alone(fast):
    backend = fast["bert"]
    texts = msra_test_sentences()[:48]
    alone = [backend.predict_batch([text])[0] for text in texts]
    together: list[list[Entity] | None] = [None] * len(texts)

    def client(offset: int) -> None:
        for index in range(offset, len(texts), 6):
            together[index] = backend.predict_batch([texts[index]])[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    assert backend._batcher.batches < backend._batcher.items  # some forward passes were shared


def test_the_export_is_cached_by_weights_checksum(dirs, cache_dir, fast, monkeypatch):
    directory = onnx_export.artifact_dir(dirs["bert"], cache_dir)
    stamp = (directory / "model.fp32.onnx").stat().st_mtime_ns
    monkeypatch.setattr(onnx_export, "_export", lambda *a, **k: pytest.fail("exported again"))
    again = FastBackend.from_directory(dirs["bert"], cache_dir=cache_dir, threads=1)
    assert (directory / "model.fp32.onnx").stat().st_mtime_ns == stamp
    assert again.predict_batch(NEWS[:1]) == fast["bert"].predict_batch(NEWS[:1])
    again.close()
    # Other weights, other artifact: a stale export can never serve a new model.
    assert onnx_export.artifact_dir(dirs["structbert"], cache_dir) != directory


def test_the_worker_factory_builds_the_onnx_backend_behind_the_result_cache(dirs, cache_dir):
    from falcon import testing

    from worker.app import create_app

    config = WorkerConfig(model_dir=dirs["lstm"], backend="onnx", cache_dir=cache_dir, max_batch=4)
    backend = build_backend(config)
    client = testing.TestClient(create_app(backend, config))
    text = NEWS[0]
    first = client.simulate_post("/v1/ner", json={"text": text}).json
    second = client.simulate_post("/v1/ner", json={"text": text}).json
    assert first == second and first["entities"]
    assert client.simulate_get("/health").status_code == 200
    assert 'layer="memory",result="hit"} 1.0' in client.simulate_get("/metrics").text
    backend.close()


def test_unknown_backend_kind_is_refused(dirs):
    with pytest.raises(ValueError, match="known backends: raner, onnx"):
        load_backend("tensorrt", dirs["bert"])
