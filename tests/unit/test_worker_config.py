"""Worker settings from NER_* variables: defaults, parsing, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import DEFAULT_MODEL_DIR, REPO_ROOT, WorkerConfig, load_config


def test_defaults_match_the_architecture_table():
    config = load_config({"NER_INSTANCE_ID": "w1"})
    assert config == WorkerConfig(model_dir=DEFAULT_MODEL_DIR, instance_id="w1")
    assert (config.backend, config.max_text_chars, config.max_batch_texts) == ("onnx", 20000, 64)
    assert (config.max_body_bytes, config.torch_threads) == (2097152, 1)
    assert (config.bind, config.processes, config.threads) == ("127.0.0.1:8000", 1, 160)
    assert (config.max_inflight, config.queue_deadline_ms, config.max_queue) == (3, 500.0, 128)
    assert config.model_name is None and config.model_version is None


def test_default_model_dir_is_inside_the_repository():
    assert DEFAULT_MODEL_DIR == REPO_ROOT / "models" / "lac-msra-lstm"


def test_every_variable_is_read():
    config = load_config(
        {
            "NER_MODEL_DIR": "/models/x",
            "NER_MODEL_NAME": "raner-news",
            "NER_MODEL_VERSION": "abc",
            "NER_BACKEND": "other",
            "NER_MAX_TEXT_CHARS": "10",
            "NER_MAX_BATCH_TEXTS": "2",
            "NER_MAX_BODY_BYTES": "300",
            "NER_TORCH_THREADS": "2",
            "NER_INSTANCE_ID": "ner-worker-7",
            "NER_BIND": "0.0.0.0:9000",
            "NER_PROCESSES": "3",
            "NER_THREADS": "8",
            "NER_MAX_INFLIGHT": "5",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
            "NER_QUEUE_DEADLINE_MS": "250",
            "NER_MAX_QUEUE": "40",
        }
    )
    assert config == WorkerConfig(
        model_dir=Path("/models/x"),
        model_name="raner-news",
        model_version="abc",
        backend="other",
        max_text_chars=10,
        max_batch_texts=2,
        max_body_bytes=300,
        torch_threads=2,
        instance_id="ner-worker-7",
        bind="0.0.0.0:9000",
        processes=3,
        threads=8,
        max_inflight=5,
        metrics_dir=Path("/tmp/metrics"),
        queue_deadline_ms=250.0,
        max_queue=40,
    )


def test_config_is_immutable():
    config = load_config({})
    with pytest.raises(AttributeError):
        config.max_text_chars = 1  # type: ignore[misc]


def test_relative_model_dir_is_made_absolute():
    assert load_config({"NER_MODEL_DIR": "models/x"}).model_dir.is_absolute()


def test_inflight_limit_is_three_and_leaves_one_thread_for_health_checks():
    assert load_config({}).max_inflight == 3
    assert load_config({"NER_THREADS": "4"}).max_inflight == 3
    assert load_config({"NER_THREADS": "2"}).max_inflight == 1
    assert load_config({"NER_THREADS": "1"}).max_inflight == 1


def test_default_threads_hold_the_whole_queue_and_more():
    config = load_config({})
    assert config.threads >= config.max_queue + config.max_batch + 4


def test_queue_deadline_zero_is_the_refuse_at_once_rule():
    config = load_config({"NER_QUEUE_DEADLINE_MS": "0"})
    assert config.queue_deadline_ms == 0
    assert config.admission_policy().deadline_seconds == 0


def test_queue_deadline_may_be_fractional_and_is_given_to_admission_in_seconds():
    assert load_config({"NER_QUEUE_DEADLINE_MS": "12.5"}).admission_policy().deadline_seconds == 0.0125


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan", "60001"])
def test_queue_deadline_must_be_a_sensible_number_of_milliseconds(value):
    with pytest.raises(ValueError, match="NER_QUEUE_DEADLINE_MS"):
        load_config({"NER_QUEUE_DEADLINE_MS": value})


def test_empty_values_count_as_unset():
    config = load_config({"NER_MODEL_NAME": "", "NER_MAX_TEXT_CHARS": " ", "NER_INSTANCE_ID": ""})
    assert config.model_name is None
    assert config.max_text_chars == 20000
    assert config.instance_id  # a fallback ID, never empty


def test_metrics_dir_is_unset_by_default():
    assert load_config({}).metrics_dir is None


@pytest.mark.parametrize(
    "name",
    [
        "NER_MAX_TEXT_CHARS",
        "NER_MAX_BATCH_TEXTS",
        "NER_MAX_BODY_BYTES",
        "NER_TORCH_THREADS",
        "NER_PROCESSES",
        "NER_THREADS",
        "NER_MAX_INFLIGHT",
        "NER_MAX_QUEUE",
    ],
)
@pytest.mark.parametrize("value", ["0", "-1", "ten", "1.5"])
def test_counts_must_be_positive_integers(name, value):
    with pytest.raises(ValueError, match=name):
        load_config({name: value})


@pytest.mark.parametrize("bind", ["8000", "localhost", "host:", ":80", "host:99999", "unix:"])
def test_malformed_bind_is_refused(bind):
    with pytest.raises(ValueError, match="NER_BIND"):
        load_config({"NER_BIND": bind})


@pytest.mark.parametrize("bind", ["127.0.0.1:0", "0.0.0.0:8000", "[::]:8000", "unix:/tmp/ner.sock"])
def test_gunicorn_bind_forms_are_accepted(bind):
    assert load_config({"NER_BIND": bind}).bind == bind


def test_export_cache_is_the_repositorys_where_it_is_writable():
    assert load_config({}).cache_dir == (REPO_ROOT / ".local" / "cache").resolve()


def test_export_cache_falls_back_to_a_temporary_directory_where_the_code_is_read_only(monkeypatch):
    import worker.config

    monkeypatch.setattr(worker.config.os, "access", lambda path, mode: False)
    cache_dir = load_config({}).cache_dir
    assert cache_dir.name == "ner-cache" and not str(cache_dir).startswith(str(REPO_ROOT))


def test_given_export_cache_is_used_as_is():
    assert load_config({"NER_CACHE_DIR": "/var/cache/ner"}).cache_dir == Path("/var/cache/ner")
