"""RaNER-format models run through ModelScope's own NER pipeline, made safe for any input.

The pipeline is used unchanged; everything it gets wrong on real text is
handled around it: long texts are chunked (it truncates silently), text is
normalised one character for one (it fails on characters it cannot find
back), offsets are checked and spans are cut from the caller's text, and a
chunk that still fails is retried in smaller pieces instead of failing the
request.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from worker.backends.base import PROBE_TEXT, BackendError, NerBackend
from worker.backends.modeldir import local_model_dir
from worker.backends.spans import TYPE_ALIASES, assemble, canonical_type, plan_chunks, raw_offsets
from worker.entities import Entity
from worker.logs import adopt_library_logger
from worker.modelinfo import WEIGHTS_FILE, weights_version
from worker.textnorm import TextNormalizer

__all__ = ["TYPE_ALIASES", "RanerBackend", "canonical_type"]

logger = logging.getLogger(__name__)

# A pipeline maps one text to {"output": [{"type", "start", "end", "span", ...}, ...]}.
Pipeline = Callable[..., Any]


class RanerBackend(NerBackend):
    """NerBackend over a ModelScope NER pipeline (real, or any callable of the same shape)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        name: str,
        version: str,
        normalizer: TextNormalizer | None = None,
        sequence_length: int = 128,
        overlap: int = 20,
        batch_pipeline: Pipeline | None = None,
        batch_size: int = 16,
    ) -> None:
        self.name = name
        self.version = version
        self._pipeline = pipeline
        self._batch_pipeline = batch_pipeline
        self._batch_size = batch_size
        self._normalizer = normalizer
        # [CLS] and [SEP] take two positions; after normalisation a token needs at least one char.
        self._max_chars = sequence_length - 2
        self._overlap = overlap
        # Tokenizers and the pipeline are not safe to share between threads.
        self._lock = threading.Lock()
        self._last_call_failed = False

    @classmethod
    def from_directory(
        cls,
        model_dir: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        torch_threads: int = 1,
        sequence_length: int = 128,
        batch_size: int = 16,
    ) -> RanerBackend:
        """Load a local RaNER-format directory (never a hub id: those hang offline)."""
        model_dir = local_model_dir(model_dir, ("configuration.json", WEIGHTS_FILE))

        import torch
        from modelscope.pipelines import pipeline as build_pipeline
        from modelscope.preprocessors import Preprocessor
        from modelscope.utils.constant import Tasks

        from worker.backends.bigru_crf import register

        register()  # the project's own model type, for directories that name it

        adopt_library_logger("modelscope")
        torch.set_num_threads(torch_threads)
        try:
            # One text at a time: no padding, so short texts cost only their own length.
            single = build_pipeline(
                Tasks.named_entity_recognition,
                model=str(model_dir),
                device="cpu",
                sequence_length=sequence_length,
                use_fast=True,  # the slow tokenizer path crashes on [UNK]
                padding=False,
            )
            # Several chunks at once: same model object, padded so they can be stacked.
            batched = build_pipeline(
                Tasks.named_entity_recognition,
                model=single.model,
                preprocessor=Preprocessor.from_pretrained(
                    str(model_dir), sequence_length=sequence_length, use_fast=True
                ),
                device="cpu",
            )
        except Exception as error:
            raise BackendError(f"cannot load RaNER model from {model_dir}: {error}") from error

        backend = cls(
            single,
            name=name or model_dir.name,
            version=version or weights_version(model_dir),
            normalizer=_normalizer_for(single),
            sequence_length=sequence_length,
            batch_pipeline=batched,
            batch_size=batch_size,
        )
        backend.probe()  # also warms the pipeline up before the first request
        logger.info("loaded RaNER model %s@%s from %s", backend.name, backend.version, model_dir)
        return backend

    def predict(self, text: str) -> list[Entity]:
        """Entities of one text."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: list[str]) -> list[list[Entity]]:
        """Entities for each text, in input order; offsets and spans always match the text."""
        plan = plan_chunks(texts, self._max_chars, self._overlap, self._normalize)
        with self._lock:
            outputs = self._run([job.normalized for job in plan.jobs])
        return assemble(plan, outputs)

    def probe(self) -> None:
        """Raise BackendError unless the model predicts on a known sentence."""
        if not self._lock.acquire(blocking=False):
            # Busy predicting: that is proof of life unless the last call broke.
            if self._last_call_failed:
                raise BackendError("the model failed on its last call")
            return
        try:
            self._call(PROBE_TEXT)
        except Exception as error:
            self._last_call_failed = True
            raise BackendError(f"model probe failed: {error}") from error
        finally:
            self._lock.release()

    def _normalize(self, text: str) -> str:
        return self._normalizer.normalize(text) if self._normalizer else text

    def _call(self, text: str) -> list[dict]:
        """One pipeline call; remembers whether the model is failing."""
        try:
            output = self._pipeline(text)["output"]
        except Exception:
            self._last_call_failed = True
            raise
        self._last_call_failed = False
        return output

    def _run(self, texts: Sequence[str]) -> list[list[dict]]:
        """Raw pipeline outputs for each text: one padded batch call if possible, else one by one."""
        if self._batch_pipeline is not None and self._worth_batching(texts):
            try:
                outputs = self._batch_pipeline(list(texts), batch_size=self._batch_size)
                if len(outputs) != len(texts):
                    raise RuntimeError(f"{len(outputs)} outputs for {len(texts)} texts")
                return [output["output"] for output in outputs]
            except Exception:
                logger.warning("batched prediction failed; retrying text by text", exc_info=True)
        return [self._predict_robust(text) for text in texts]

    def _worth_batching(self, texts: Sequence[str]) -> bool:
        """Batches pad every text to the full window, which only pays off for longer texts."""
        if len(texts) < 2:
            return False
        return sum(len(text) for text in texts) / len(texts) >= self._max_chars / 4

    def _predict_robust(self, text: str) -> list[dict]:
        """Predict one text; if the pipeline raises, predict its halves instead of failing."""
        try:
            return self._call(text)
        except Exception:
            logger.warning("prediction failed on a %d-char piece; splitting it", len(text), exc_info=True)
        try:
            self._call(PROBE_TEXT)
        except Exception as error:
            raise BackendError(f"model cannot predict: {error}") from error
        if len(text) <= 1:
            return []  # a lone character the model cannot handle has no entity to give
        middle = len(text) // 2
        left = self._predict_robust(text[:middle]) if text[:middle].strip() else []
        right = self._predict_robust(text[middle:]) if text[middle:].strip() else []
        return left + [_shifted(item, middle) for item in right if raw_offsets(item) is not None]


def _shifted(item: dict, by: int) -> dict:
    """A raw entity of a text's right part, in offsets of the whole text."""
    start, end = raw_offsets(item)
    return {**item, "start": start + by, "end": end + by}


def _normalizer_for(pipeline: Any) -> TextNormalizer:
    """A TextNormalizer that follows the pipeline tokenizer's own vocabulary and normaliser."""
    tokenizer = pipeline.preprocessor.nlp_tokenizer.tokenizer
    backend_normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    canonical = backend_normalizer.normalize_str if backend_normalizer is not None else None
    return TextNormalizer(
        tokenizer.get_vocab(),
        lowercase=bool(getattr(tokenizer, "do_lower_case", True)),
        canonical=canonical,
    )
