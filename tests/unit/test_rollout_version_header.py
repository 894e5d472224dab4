"""Every answer a model gave names its version in X-Model-Version, the same as the body's model field."""

from __future__ import annotations

from tests.unit.fake_backend import make_client


def test_a_single_text_answer_names_the_version_that_served_it():
    result = make_client().simulate_post("/v1/ner", json={"text": "张三在北京"})
    assert result.headers["X-Model-Version"] == result.json["model"] == "fake@0.1"


def test_a_batch_answer_names_the_version_that_served_it():
    result = make_client().simulate_post("/v1/ner", json={"texts": ["张三", "北京"]})
    assert result.headers["X-Model-Version"] == result.json["model"]


def test_the_original_predict_route_names_the_version_too():
    result = make_client().simulate_post("/predict", json={"text": "张三在北京"})
    assert result.headers["X-Model-Version"] == "fake@0.1"


def test_a_refused_request_that_no_model_answered_names_no_version():
    result = make_client().simulate_post("/v1/ner", json={"text": ""})
    assert result.status_code == 400 and "X-Model-Version" not in result.headers
