"""The fast backend: the same model directory served by ONNX Runtime, a numpy CRF and micro-batching.

Same chunking, normalisation and entity assembly as the reference `raner`
backend (worker.backends.spans), same token ids (worker.backends.tokenizer),
same CRF decode (worker.backends.viterbi); only the encoder runs in ONNX
Runtime, on padded length-bucketed batches gathered from concurrent requests.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from worker.admission import AdmissionPolicy, QueueObserver
from worker.backends.base import PROBE_TEXT, BackendError, NerBackend
from worker.backends.batcher import MicroBatcher
from worker.backends.modeldir import CHARACTER_KINDS, local_model_dir
from worker.backends.onnx_export import Artifacts, ensure_artifacts
from worker.backends.spans import assemble, bies_spans, plan_chunks
from worker.backends.tokenizer import Encoding, WordPieceTokenizer
from worker.backends.viterbi import CrfParams, viterbi_decode
from worker.entities import Entity
from worker.modelinfo import WEIGHTS_FILE, weights_version

logger = logging.getLogger(__name__)

MAX_FORWARD_BATCH = 32  # sequences per forward pass: bounds padding memory for large requests
PROBE_TIMEOUT = 10.0
PROBE_RECENT_SECONDS = 1.0  # a batch that succeeded this recently answers the health probe
# On CPU, ORT's SkipLayerNormalization kernel is several times slower than the Add + LayerNormalization it replaces.
SLOWER_FUSIONS = ["SkipLayerNormFusion"]


def default_ort_threads(processes: int) -> int:
    """Intra-op threads so that threads x processes never exceeds the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def open_session(path: Path, threads: int):
    """An ONNX Runtime CPU session that uses exactly `threads` cores and does not spin when idle."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn the cores the gateway and other processes need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=SLOWER_FUSIONS)  # fmt: skip


@dataclass(frozen=True)
class Tagger:
    """Token ids in, CRF tag ids per word out, for many sequences per forward pass."""

    session: object
    crf: CrfParams
    kind: str
    input_names: tuple[str, ...]

    def tag(self, encodings: Sequence[Encoding]) -> list[np.ndarray]:
        """Tag ids per word of each encoding, in input order; batches are bucketed by length."""
        results: list[np.ndarray | None] = [None] * len(encodings)
        for bucket in length_buckets([len(e.ids) for e in encodings], MAX_FORWARD_BATCH):
            tags = self._tag_padded([encodings[i] for i in bucket])
            for i, row in zip(bucket, tags):
                results[i] = row
        return results  # type: ignore[return-value]

    def _tag_padded(self, encodings: list[Encoding]) -> list[np.ndarray]:
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        steps = int(lengths.max())
        ids = np.zeros((len(encodings), steps), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
        positions = np.arange(steps)[None, :]
        valid = positions < lengths[:, None]
        if self.kind in CHARACTER_KINDS:
            reverse = np.where(valid, lengths[:, None] - 1 - positions, positions)
            feeds = {"input_ids": ids, "reverse_index": reverse}
        else:
            feeds = {"input_ids": ids, "attention_mask": valid.astype(np.int64), "token_type_ids": np.zeros_like(ids)}
        emissions = self.session.run(["emissions"], {name: feeds[name] for name in self.input_names})[0]
        words = np.array([len(e.word_starts) for e in encodings], dtype=np.int64)
        width = max(1, int(words.max()))
        index = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            index[row, : words[row]] = self._emission_positions(encoding)
        word_emissions = np.take_along_axis(emissions, index[:, :, None], axis=1)
        paths = viterbi_decode(word_emissions, np.maximum(words, 1), self.crf)
        return [paths[row, : words[row]] for row in range(len(encodings))]

    def _emission_positions(self, encoding: Encoding) -> list[int] | range:
        """Where each word's emission scores are, as the reference's CRF head reads them.

        The transformer head gathers each word's first token. ModelScope's
        lstm-crf head instead decodes the first n token positions (n = number
        of words); with multi-piece words that shifts later words' scores, and
        it is reproduced here so tags stay equal to the reference.
        """
        if self.kind in CHARACTER_KINDS:
            return range(len(encoding.word_starts))
        return encoding.word_starts


def length_buckets(lengths: Sequence[int], max_batch: int) -> list[list[int]]:
    """Indices grouped so that each group pads little: sorted by length, cut when it grows too much."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    buckets: list[list[int]] = []
    for index in order:
        if buckets and len(buckets[-1]) < max_batch and lengths[index] <= lengths[buckets[-1][0]] * 1.25 + 8:
            buckets[-1].append(index)
        else:
            buckets.append([index])
    return buckets


class FastBackend(NerBackend):
    """NerBackend over an exported model: tags equal to the reference pipeline's, far faster."""

    def __init__(
        self,
        tagger: Tagger,
        tokenizer: WordPieceTokenizer,
        labels: Sequence[str],
        *,
        name: str,
        version: str,
        sequence_length: int = 128,
        overlap: int = 20,
        max_batch: int = 16,
        batch_wait_ms: float = 2.0,
        admission: AdmissionPolicy | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self._tagger = tagger
        self._tokenizer = tokenizer
        self._normalizer = tokenizer.normalizer()
        self._labels = list(labels)
        self._max_chars = sequence_length - 2  # same chunks as the reference, with or without [CLS]/[SEP]
        self._overlap = overlap
        self._lock = threading.Lock()
        self._batcher: MicroBatcher[Encoding, np.ndarray] | None = None
        if max_batch > 1:
            self._batcher = MicroBatcher(tagger.tag, max_batch=max_batch, max_wait=batch_wait_ms / 1000,
                                         admission=admission)  # fmt: skip

    @property
    def queues_requests(self) -> bool:
        """Whether requests wait for the model in this backend's own admission queue (the batcher's)."""
        return self._batcher is not None and self._batcher.admission is not None

    def set_queue_observer(self, observer: QueueObserver) -> None:
        """Where the batcher's queue length and waits go (the metrics)."""
        if self._batcher is not None:
            self._batcher.observer = observer

    @classmethod
    def from_directory(
        cls,
        model_dir: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        quantize: str = "fp32",
        cache_dir: Path,
        threads: int | None = None,
        max_batch: int = 16,
        batch_wait_ms: float = 2.0,
        torch_threads: int = 1,
        admission: AdmissionPolicy | None = None,
    ) -> FastBackend:
        """Export (or reuse the cached export of) a local RaNER directory and open it."""
        model_dir = local_model_dir(model_dir, ("configuration.json", WEIGHTS_FILE, "vocab.txt"))
        try:
            artifacts = ensure_artifacts(model_dir, Path(cache_dir), quantize, torch_threads)
            backend = cls.from_artifacts(
                artifacts, model_dir, name=name or model_dir.name, version=version or weights_version(model_dir),
                threads=threads or default_ort_threads(1), max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                admission=admission,
            )  # fmt: skip
        except BackendError:
            raise
        except Exception as error:
            raise BackendError(f"cannot load {model_dir} with ONNX Runtime: {error}") from error
        backend.probe()  # also warms the session up before the first request
        logger.info("loaded %s@%s (%s, %s) from %s", backend.name, backend.version, artifacts.meta["kind"],
                    artifacts.onnx.name, model_dir)  # fmt: skip
        return backend

    @classmethod
    def from_artifacts(cls, artifacts: Artifacts, model_dir: Path, *, name: str, version: str, threads: int,
                       max_batch: int = 16, batch_wait_ms: float = 2.0,
                       admission: AdmissionPolicy | None = None) -> FastBackend:  # fmt: skip
        """Open already exported artifacts; the tokenizer still comes from the model directory."""
        kind = artifacts.meta["kind"]
        tagger = Tagger(open_session(artifacts.onnx, threads), CrfParams.load(artifacts.crf), kind,
                        tuple(artifacts.meta["inputs"]))  # fmt: skip
        tokenizer = WordPieceTokenizer.from_directory(model_dir, add_special_tokens=kind not in CHARACTER_KINDS)
        return cls(tagger, tokenizer, artifacts.meta["labels"], name=name, version=version,
                   max_batch=max_batch, batch_wait_ms=batch_wait_ms, admission=admission)  # fmt: skip

    def predict(self, text: str) -> list[Entity]:
        """Entities of one text."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        """Entities for each text, in input order; offsets and spans always match the text."""
        return self._predict(texts)

    def _predict(self, texts: list[str], timeout: float | None = None, urgent: bool = False) -> list[list[Entity]]:
        batcher = self._batcher
        if batcher is not None:
            batcher.announce()  # a batch being gathered now waits for this request's chunks
        try:
            plan = plan_chunks(texts, self._max_chars, self._overlap, self._normalizer.normalize)
            encodings = [self._tokenizer.encode(job.normalized) for job in plan.jobs]
        except BaseException:
            if batcher is not None:
                batcher.withdraw()
            raise
        if batcher is not None:
            tags = batcher.submit(encodings, timeout, announced=True, urgent=urgent)
        else:
            with self._lock:
                tags = self._tagger.tag(encodings)
        raw = [
            bies_spans([self._labels[tag] for tag in row], encoding.word_offsets, job.normalized)
            for job, encoding, row in zip(plan.jobs, encodings, tags)
        ]
        return assemble(plan, raw)

    def probe(self) -> None:
        """Raise BackendError unless the model tags a known sentence right now.

        Under load a batch that just succeeded is proof enough: a probe sentence would only
        compete with the queue, and the health check must answer within its timeout.
        """
        if self._batcher is not None and self._batcher.succeeded_within(PROBE_RECENT_SECONDS):
            return
        try:
            self._predict([PROBE_TEXT], timeout=PROBE_TIMEOUT, urgent=True)
        except Exception as error:
            raise BackendError(f"model probe failed: {error}") from error

    def close(self) -> None:
        """Stop the batching thread."""
        if self._batcher is not None:
            self._batcher.close()
