"""The shipped default model is a real NER model, served by the unchanged ModelScope pipeline.

These tests read the trained directory in models/ (no training, no network); the scores
themselves come from `make eval`, and metrics.json records them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts.training import lac, msra
from worker.backends import load_backend
from worker.entities import Entity

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "lac-msra-lstm"
# Entity-level F1 on the 5,000-sentence MSRA test split, as reported for this model.
REPORTED_F1 = 0.88
CLEAR_SENTENCES = {
    "国务院总理李强在北京会见了联合国秘书长古特雷斯。": {
        ("PER", "李强"), ("LOC", "北京"), ("ORG", "联合国"), ("PER", "古特雷斯"),
    },
    "新华社上海三月五日电，复旦大学校长在上海市政府发表讲话。": {
        ("ORG", "新华社"), ("LOC", "上海"), ("ORG", "复旦大学"),
    },
    "江泽民主席和朱镕基总理在中南海会见了美国总统克林顿。": {
        ("PER", "江泽民"), ("PER", "朱镕基"), ("LOC", "中南海"), ("LOC", "美国"), ("PER", "克林顿"),
    },
    "中国人民银行今天宣布，广东省和浙江省的经济增长较快。": {
        ("ORG", "中国人民银行"), ("LOC", "广东省"), ("LOC", "浙江省"),
    },
}  # fmt: skip


def found(entities: list[Entity]) -> set[tuple[str, str]]:
    return {(entity.type, entity.span) for entity in entities}


@pytest.fixture(scope="module")
def backend():
    return load_backend("raner", MODEL_DIR, torch_threads=1)


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((MODEL_DIR / "metrics.json").read_text(encoding="utf-8"))


def test_shipped_directory_has_the_raner_layout():
    for name in ("configuration.json", "config.json", "vocab.txt", "pytorch_model.bin", "metrics.json", "README.md"):
        assert (MODEL_DIR / name).is_file(), name
    configuration = json.loads((MODEL_DIR / "configuration.json").read_text(encoding="utf-8"))
    assert configuration["task"] == "named-entity-recognition"
    assert configuration["pipeline"]["type"] == "named-entity-recognition"


def test_shipped_model_stays_small():
    assert sum(path.stat().st_size for path in MODEL_DIR.iterdir()) <= 25e6


def test_unchanged_modelscope_pipeline_finds_the_obvious_entities():
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    ner = pipeline(Tasks.named_entity_recognition, model=str(MODEL_DIR), sequence_length=128, use_fast=True)
    text = next(iter(CLEAR_SENTENCES))
    output = ner(text)["output"]
    assert {(item["type"], item["span"]) for item in output} >= CLEAR_SENTENCES[text]
    for item in output:
        assert text[item["start"] : item["end"]] == item["span"]


@pytest.mark.parametrize("text", CLEAR_SENTENCES)
def test_backend_finds_the_obvious_entities(backend, text):
    [entities] = backend.predict_batch([text])
    assert found(entities) >= CLEAR_SENTENCES[text]


def test_backend_finds_them_in_one_batch(backend):
    texts = list(CLEAR_SENTENCES)
    for text, entities in zip(texts, backend.predict_batch(texts)):
        assert found(entities) >= CLEAR_SENTENCES[text]


def test_padded_batches_predict_exactly_like_single_texts(backend):
    sentences = [sentence.text for sentence in msra.read_sentences(msra.fetch()["test"])[:48]]
    sentences = [text for text in sentences if len(text) >= 40][:16]  # long enough to be batched
    assert len(sentences) >= 8
    assert backend.predict_batch(sentences) == [backend.predict_batch([text])[0] for text in sentences]


def test_model_does_not_depend_on_its_directory_name(backend, tmp_path):
    copy = tmp_path / "default"
    shutil.copytree(MODEL_DIR, copy)
    renamed = load_backend("raner", copy, torch_threads=1)
    texts = list(CLEAR_SENTENCES)
    assert renamed.predict_batch(texts) == backend.predict_batch(texts)


def test_digits_and_latin_do_not_shift_the_entities_after_them(backend):
    [entities] = backend.predict_batch(["1998年ABC公司的代表李强在北京访问。"])
    assert {("PER", "李强"), ("LOC", "北京")} <= found(entities)


def test_metrics_report_at_least_the_stated_f1(metrics):
    assert metrics["f1"] >= REPORTED_F1
    assert metrics["scores"]["ALL"]["f1"] == metrics["f1"]
    assert set(metrics["scores"]) == {"PER", "LOC", "ORG", "ALL"}
    assert metrics["test_sentences"] == 5000


def test_metrics_split_recall_by_mentions_seen_and_unseen_in_training(metrics):
    novelty = metrics["novelty"]
    assert 0.2 < novelty["unseen_share"] < 0.4  # about 30 % of MSRA test mentions never occur in training
    assert 0 < novelty["unseen_recall"] < novelty["seen_recall"] <= 1


def test_metrics_name_the_data_and_teacher_it_was_trained_and_scored_on(metrics):
    assert metrics["data"].items() >= msra.checksums().items()
    assert metrics["data"]["lac"] == f"{lac.SDIST_NAME} sha256:{lac.SDIST_SHA256} ({lac.LICENSE})"
    teacher = json.loads((REPO / "models" / "lac-msra-bigru" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["teacher"].startswith("lac-msra-bigru@")
    assert teacher["f1"] >= REPORTED_F1


def test_shipped_model_was_trained_with_the_checked_in_config(metrics):
    config = json.loads((REPO / "scripts" / "train_model.json").read_text())
    trained = metrics["training"]["config"]
    assert {k: v for k, v in trained.items() if k != "output_dir"} == {
        k: v for k, v in config.items() if k != "output_dir"
    }
    assert config["output_dir"] == f"models/{MODEL_DIR.name}"
