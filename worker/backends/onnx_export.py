"""Export a RaNER directory's encoder + emission layer to ONNX, once per weights checksum.

Serving then needs only onnxruntime and numpy: the graph gives per-token
emission scores, the CRF transitions are saved beside it for the numpy
Viterbi. Artifacts live in `cache_dir/onnx/<content key>/` and are built
under a file lock, so processes starting together export once and share it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from worker.backends.modeldir import content_key, label_names, model_kind
from worker.backends.onnx_optimize import EncoderShape, encoder_shape, fuse_attention
from worker.logs import adopt_library_logger

logger = logging.getLogger(__name__)

# Bump when the exported graph's inputs or semantics change: old artifacts are then ignored.
EXPORT_FORMAT = 2
OPSET = 17
QUANTIZE_MODES = ("fp32", "int8")


@dataclass(frozen=True)
class Artifacts:
    """Paths of one model's exported graph (FP32 or INT8), its CRF and its metadata."""

    directory: Path
    onnx: Path
    crf: Path
    meta: dict


def artifact_dir(model_dir: Path, cache_dir: Path) -> Path:
    """Where the artifacts of exactly these weights and configs live."""
    return Path(cache_dir) / "onnx" / f"{content_key(model_dir)[:24]}-f{EXPORT_FORMAT}"


def ensure_artifacts(model_dir: Path, cache_dir: Path, quantize: str = "fp32", torch_threads: int = 1) -> Artifacts:
    """Reuse the cached export for these weights, or build it (once across processes)."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    model_dir = Path(model_dir).resolve()
    directory = artifact_dir(model_dir, cache_dir)
    directory.parent.mkdir(parents=True, exist_ok=True)
    wanted = directory / f"model.{quantize}.onnx"
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the files
        if not (directory / "meta.json").is_file():
            _export(model_dir, directory, torch_threads)
        meta = json.loads((directory / "meta.json").read_text())
        if not wanted.is_file():
            attention = encoder_shape(model_dir) if meta["kind"] == "transformer-crf" else None
            _quantize(directory / "model.fp32.onnx", wanted, attention)
    return Artifacts(directory, wanted, directory / "crf.npz", meta)


def _export(model_dir: Path, directory: Path, torch_threads: int) -> None:
    """Trace the model into a temporary directory, then move it into place whole."""
    import torch
    from modelscope.models import Model

    from worker.backends.bigru_crf import register
    from worker.backends.bigru_onnx import build_graph
    from worker.backends.emission_graphs import emission_graph
    from worker.backends.viterbi import CrfParams

    adopt_library_logger("modelscope")
    register()
    started = time.monotonic()
    torch.set_num_threads(torch_threads)
    kind = model_kind(model_dir)
    model = Model.from_pretrained(str(model_dir), task="named-entity-recognition", device="cpu")
    model.eval()
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        if kind == "bigru-crf":
            names = build_graph(model, staging / "model.fp32.onnx")
        else:
            wrapper, inputs, names, axes = emission_graph(kind, model)
            with torch.no_grad():
                torch.onnx.export(
                    wrapper, inputs, str(staging / "model.fp32.onnx"), input_names=names,
                    output_names=["emissions"], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                )  # fmt: skip
        crf = model.head.crf
        CrfParams(
            *(
                parameter.detach().float().numpy()
                for parameter in (crf.start_transitions, crf.end_transitions, crf.transitions)
            )
        ).save(staging / "crf.npz")
        meta = {
            "kind": kind,
            "inputs": names,
            "labels": label_names(model_dir),
            "model_dir": str(model_dir),
            "export_format": EXPORT_FORMAT,
            "torch": torch.__version__,
        }
        (staging / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to ONNX in %.1fs: %s", model_dir, time.monotonic() - started, directory)


def _quantize(source: Path, target: Path, attention: EncoderShape | None = None) -> None:
    """Dynamic INT8 weights (QInt8: faster than QUInt8 on these CPUs), written atomically.

    Given a transformer's shape, its attention blocks are fused first (see onnx_optimize),
    so they become QAttention kernels; the FP32 graph itself stays as exported.
    """
    started = time.monotonic()
    partial = target.with_name(f".{target.name}.partial")
    fused = target.with_name(f".{target.name}.fused.partial")
    try:
        if attention is not None and fuse_attention(source, fused, attention):
            _quantize_dynamic(fused, partial)
        else:
            _quantize_dynamic(source, partial)
        os.replace(partial, target)
    finally:
        fused.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    logger.info("quantized %s to INT8 in %.1fs", source.parent, time.monotonic() - started)


def _quantize_dynamic(source: Path, target: Path) -> None:
    """quantize_dynamic, told that tensors its shape inference cannot type (fused contrib ops' outputs) are float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
