"""Fuse a BERT-style encoder's attention blocks before dynamic INT8 quantization.

The plain export spells each attention block out as a dozen small ops that
quantize_dynamic leaves in float and ONNX Runtime runs one by one. Fused into
Attention, quantize_dynamic turns each block into one QAttention kernel.
Only attention is fused: on CPU, the optimizer's other fusions (BiasGelu,
SkipLayerNormalization, quantized EmbedLayerNormalization) made the INT8
graph slower. A fusion is kept only when the fused graph's emissions equal
the plain graph's on a padded probe batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Fused and plain FP32 graphs differ by float rounding only (~1e-6); anything larger is a wrong fusion.
TOLERANCE = 1e-4
_PROBE_LENGTHS = (13, 7, 1)


@dataclass(frozen=True)
class EncoderShape:
    """What the fusion patterns must know about a BERT-style encoder, from its config.json."""

    num_heads: int
    hidden_size: int
    vocab_size: int


def encoder_shape(model_dir: Path) -> EncoderShape | None:
    """The encoder's heads, width and vocabulary, or None when config.json does not say."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    try:
        shape = EncoderShape(int(config["num_attention_heads"]), int(config["hidden_size"]), int(config["vocab_size"]))
    except (KeyError, TypeError, ValueError):
        return None
    valid = shape.num_heads > 0 and shape.hidden_size % shape.num_heads == 0 and shape.vocab_size > 1
    return shape if valid else None


def fuse_attention(source: Path, target: Path, shape: EncoderShape) -> bool:
    """Write `source` with fused attention to `target`; False (nothing written) when that fails or changes results."""
    try:
        blocks = _write_fused(source, target, shape)
        difference = emission_difference(source, target, shape.vocab_size) if blocks else None
    except Exception:  # the fusion is only an optimisation: a graph it cannot handle is quantized unfused
        logger.warning("attention fusion of %s failed: quantizing the plain graph", source, exc_info=True)
        target.unlink(missing_ok=True)
        return False
    if difference is None or not difference <= TOLERANCE:
        logger.warning("attention fusion of %s: %d blocks, emission difference %s (limit %g): quantizing the plain "
                       "graph", source, blocks, difference, TOLERANCE)  # fmt: skip
        target.unlink(missing_ok=True)
        return False
    logger.info("fused %d attention blocks of %s, max emission difference %.2g", blocks, source, difference)
    return True


def _write_fused(source: Path, target: Path, shape: EncoderShape) -> int:
    """Run ONNX Runtime's BERT fusions on `source`; save to `target` and return the Attention count, if any."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(source), model_type="bert", num_heads=shape.num_heads, hidden_size=shape.hidden_size,
                           optimization_options=_attention_only(), opt_level=0)  # fmt: skip
    blocks = fused.get_fused_operator_statistics().get("Attention", 0)
    if blocks:
        fused.save_model_to_file(str(target))
    return blocks


def _attention_only():
    """Fusion options: Attention (and Gelu, which ONNX Runtime fuses at load anyway), over the raw 2D mask."""
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)  # the exported 0/1 mask: no right-padding assumption baked into the graph
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_bias_gelu = False
    options.enable_embed_layer_norm = False
    return options


def emission_difference(plain: Path, fused: Path, vocab_size: int) -> float:
    """Largest absolute emission difference between two graphs over the real tokens of a padded batch."""
    feeds, lengths = probe_batch(vocab_size)
    plain_out, fused_out = (_session(path).run(["emissions"], feeds)[0] for path in (plain, fused))
    if plain_out.shape != fused_out.shape:
        return float("inf")
    return max(float(np.abs(plain_out[row, :length] - fused_out[row, :length]).max())
               for row, length in enumerate(lengths))  # fmt: skip


def probe_batch(vocab_size: int) -> tuple[dict[str, np.ndarray], list[int]]:
    """A right-padded batch of unequal lengths, so the fused attention's masking is exercised too."""
    steps = max(_PROBE_LENGTHS)
    ids = np.random.default_rng(0).integers(1, vocab_size, size=(len(_PROBE_LENGTHS), steps), dtype=np.int64)
    mask = (np.arange(steps)[None, :] < np.array(_PROBE_LENGTHS)[:, None]).astype(np.int64)
    feeds = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return feeds, list(_PROBE_LENGTHS)


def _session(path: Path):
    """A plain single-threaded CPU session, for comparing graphs rather than serving them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
