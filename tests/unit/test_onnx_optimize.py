"""The INT8 graph of a transformer is quantized from a fused-attention graph that computes the same emissions.

Tiny random models of both encoder types (BERT, StructBERT) and the
lstm-crf kind, generated and exported into temporary directories.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.models import make_three_kinds
from worker.backends import onnx_export, onnx_optimize
from worker.backends.onnx_optimize import EncoderShape, emission_difference, encoder_shape, fuse_attention, probe_batch

LAYERS = 2  # make_model's tiny geometry


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return make_three_kinds(tmp_path_factory.mktemp("optimize-models"), seeds=(11, 12, 13))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("optimize-cache")


def op_counts(path: Path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("kind", ["bert", "structbert"])
def test_fused_graph_gives_the_plain_graphs_emissions(kind, models, cache_dir, tmp_path):
    plain = onnx_export.ensure_artifacts(models[kind], cache_dir).onnx
    shape = encoder_shape(models[kind])
    fused = tmp_path / "fused.onnx"
    assert fuse_attention(plain, fused, shape)
    counts = op_counts(fused)
    assert counts["Attention"] == LAYERS
    assert counts["Softmax"] == 0 and counts["Transpose"] == 0  # nothing of the decomposed attention is left
    assert emission_difference(plain, fused, shape.vocab_size) <= 1e-4


def test_fused_graph_masks_padding_like_the_plain_graph(models, cache_dir, tmp_path):
    """Each sequence's emissions are the same alone and right-padded in a batch with longer ones."""
    import onnxruntime as ort

    plain = onnx_export.ensure_artifacts(models["bert"], cache_dir).onnx
    shape = encoder_shape(models["bert"])
    fused = tmp_path / "fused.onnx"
    assert fuse_attention(plain, fused, shape)
    feeds, lengths = probe_batch(shape.vocab_size)
    for path in (plain, fused):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batched = session.run(["emissions"], feeds)[0]
        for row, length in enumerate(lengths):
            single = {name: value[row : row + 1, :length] for name, value in feeds.items()}
            alone = session.run(["emissions"], single)[0]
            np.testing.assert_allclose(batched[row, :length], alone[0], atol=1e-4)


@pytest.mark.parametrize("kind", ["bert", "structbert"])
def test_int8_transformer_graph_has_quantized_attention_and_fp32_stays_as_exported(kind, models, cache_dir):
    int8 = onnx_export.ensure_artifacts(models[kind], cache_dir, quantize="int8")
    counts = op_counts(int8.onnx)
    assert counts["QAttention"] == LAYERS
    assert counts["SkipLayerNormalization"] == 0  # slower than LayerNormalization on CPU: not fused
    fp32 = op_counts(int8.directory / "model.fp32.onnx")
    assert fp32["Attention"] == 0 and fp32["Softmax"] == LAYERS
    assert not list(int8.directory.glob(".*partial"))  # no intermediate files left behind


def test_lstm_int8_graph_is_quantized_without_fusion(models, cache_dir):
    int8 = onnx_export.ensure_artifacts(models["lstm"], cache_dir, quantize="int8")
    counts = op_counts(int8.onnx)
    assert counts["DynamicQuantizeLSTM"] == 2 and counts["QAttention"] == 0


def test_a_fusion_that_changes_results_is_dropped_for_the_plain_graph(models, cache_dir, tmp_path, monkeypatch):
    plain = onnx_export.ensure_artifacts(models["bert"], cache_dir).onnx
    monkeypatch.setattr(onnx_optimize, "emission_difference", lambda *args: 0.5)
    fused = tmp_path / "fused.onnx"
    assert not fuse_attention(plain, fused, encoder_shape(models["bert"]))
    assert not fused.exists()
    target = tmp_path / "model.int8.onnx"
    onnx_export._quantize(plain, target, encoder_shape(models["bert"]))
    counts = op_counts(target)
    assert counts["QAttention"] == 0 and counts["MatMulInteger"] > 0


def test_a_fusion_that_fails_is_dropped_for_the_plain_graph(models, cache_dir, tmp_path, monkeypatch):
    plain = onnx_export.ensure_artifacts(models["bert"], cache_dir).onnx

    def broken(source, target, shape):
        target.write_bytes(b"half a graph")
        raise RuntimeError("unexpected graph")

    monkeypatch.setattr(onnx_optimize, "_write_fused", broken)
    fused = tmp_path / "fused.onnx"
    assert not fuse_attention(plain, fused, encoder_shape(models["bert"]))
    assert not fused.exists()


def test_encoder_shape_comes_from_config_json(models, tmp_path):
    config = json.loads((models["bert"] / "config.json").read_text())
    assert encoder_shape(models["bert"]) == EncoderShape(2, 128, config["vocab_size"])
    assert encoder_shape(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 3, "hidden_size": 128, "vocab_size": 9}))
    assert encoder_shape(tmp_path) is None  # heads must divide the width
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 128}))
    assert encoder_shape(tmp_path) is None
