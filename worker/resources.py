"""HTTP resources: request parsing and limits, the NER routes, health, and the demo page."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

import falcon

from worker.backends.base import NerBackend
from worker.errors import InvalidRequest, NotReady, Overloaded, PayloadTooLarge, UnsupportedMediaType
from worker.predictor import Predictor

log = logging.getLogger("worker.resources")

# Names the model version (name@version, the body's "model") on every answer a model gave; clients
# send it back to the gateway to pin that version.
MODEL_VERSION_HEADER = "X-Model-Version"
_SURROGATE = re.compile("[\ud800-\udfff]")
_UTF8_CHARSETS = {"utf-8", "utf8"}


def _body_errors() -> tuple[type[BaseException], ...]:
    """What the server raises while the app reads a body the client cut short or framed wrongly."""
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # served by something else (tests, another WSGI server)
        return (OSError,)
    return (OSError, ParseException)


_BROKEN_BODY = _body_errors()


# ---------------------------------------------------------------- request body


def read_json_object(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """Parse the body with every limit enforced before the expensive step it protects."""
    _check_content_type(req.content_type)
    length = req.content_length  # Falcon answers 400 itself for a malformed header
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {max_bytes}")
    try:
        if length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
            raw = _read_bounded(req.stream, max_bytes)
        else:
            raw = req.bounded_stream.read()  # never reads past Content-Length, empty without one
    except _BROKEN_BODY as exc:
        raise InvalidRequest(f"request body ended early or is malformed ({type(exc).__name__})") from None
    if length is not None and len(raw) < length:
        raise InvalidRequest(f"request body ended after {len(raw)} of the {length} bytes announced")
    if not raw:
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise InvalidRequest("JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _check_content_type(content_type: str | None) -> None:
    media_type, *params = (content_type or "").split(";")
    if media_type.strip().lower() != falcon.MEDIA_JSON:
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type or 'nothing'!r}")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8_CHARSETS:
            raise UnsupportedMediaType("JSON must be encoded as UTF-8")


def _read_bounded(stream: Any, max_bytes: int) -> bytes:
    """Read a body of unknown length, stopping as soon as it is over the limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(64 * 1024, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body is over the limit of {max_bytes} bytes")


# ---------------------------------------------------------------- validation


def validate_text(value: Any, field: str, max_chars: int) -> str:
    """One text: a non-empty string of Unicode scalar values within the size limit."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {_json_type(value)}")
    if value == "":
        raise InvalidRequest(f"{field} is empty")
    if len(value) > max_chars:
        raise PayloadTooLarge(f"{field} has {len(value)} characters; the limit is {max_chars}")
    bad = _SURROGATE.search(value)
    if bad:
        raise InvalidRequest(
            f"{field} contains a lone surrogate (U+{ord(bad.group()):04X}) "
            f"at index {bad.start()}; send valid Unicode text"
        )
    return value


def validate_texts(value: Any, max_texts: int, max_chars: int) -> list[str]:
    """A batch: a non-empty list of valid texts, no longer than the batch limit."""
    if not isinstance(value, list):
        raise InvalidRequest(f"texts must be a list of strings, got {_json_type(value)}")
    if not value:
        raise InvalidRequest("texts is empty")
    if len(value) > max_texts:
        raise PayloadTooLarge(f"texts has {len(value)} items; the limit is {max_texts}")
    return [validate_text(item, f"texts[{i}]", max_chars) for i, item in enumerate(value)]


def _json_type(value: Any) -> str:
    """Name types the way the client wrote them, not the way Python sees them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _note_texts(req: falcon.Request, texts: list[str]) -> None:
    """Hand the request log its text counts."""
    req.context.texts = len(texts)
    req.context.chars = sum(len(t) for t in texts)


class NerResource:
    """POST /v1/ner: one text or a batch."""

    def __init__(self, predictor: Predictor, max_body_bytes: int, max_text_chars: int, max_batch_texts: int) -> None:
        self._predictor = predictor
        self._max_body_bytes = max_body_bytes
        self._max_text_chars = max_text_chars
        self._max_batch_texts = max_batch_texts

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req, self._max_body_bytes)
        if ("text" in body) == ("texts" in body):
            raise InvalidRequest("send exactly one of the fields text (a string) or texts (a list)")
        if "text" in body:
            text = validate_text(body["text"], "text", self._max_text_chars)
            _note_texts(req, [text])
            [entities] = self._predictor.predict([text])
            resp.media = {"entities": [e.to_dict() for e in entities], "model": self._predictor.model}
            resp.set_header(MODEL_VERSION_HEADER, self._predictor.model)
            return
        texts = validate_texts(body["texts"], self._max_batch_texts, self._max_text_chars)
        _note_texts(req, texts)
        results = self._predictor.predict(texts)
        resp.media = {
            "results": [{"entities": [e.to_dict() for e in ents]} for ents in results],
            "model": self._predictor.model,
        }
        resp.set_header(MODEL_VERSION_HEADER, self._predictor.model)


class PredictResource:
    """POST /predict: the original single-text service's request and response shape."""

    def __init__(self, predictor: Predictor, max_body_bytes: int, max_text_chars: int) -> None:
        self._predictor = predictor
        self._max_body_bytes = max_body_bytes
        self._max_text_chars = max_text_chars

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req, self._max_body_bytes)
        if "text" not in body:
            raise InvalidRequest("missing field: text")
        text = validate_text(body["text"], "text", self._max_text_chars)
        _note_texts(req, [text])
        [entities] = self._predictor.predict([text])
        resp.media = {"output": [e.to_dict() for e in entities]}
        resp.set_header(MODEL_VERSION_HEADER, self._predictor.model)


class HealthResource:
    """GET /health: readiness for Consul, with a static body so check output never changes.

    200 ready, 429 ready but refusing requests for several seconds in a row (Consul
    "warning": the gateway gives it less weight), 503 not ready. Each outcome has one fixed body.
    """

    def __init__(
        self,
        backend: NerBackend,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        instance_id: str = "",
        saturated: Callable[[], bool] = lambda: False,
    ) -> None:
        self._backend = backend
        self._instance_id = instance_id
        self._saturated = saturated
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._healthy = False

    def is_healthy(self) -> bool:
        """Probe at most once per cache period, however many checks arrive at once."""
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._cache_seconds:
                self._healthy = self._probe()
                self._checked_at = self._clock()
            return self._healthy

    def _probe(self) -> bool:
        try:
            self._backend.probe()
        except Exception:  # noqa: BLE001 - any failure means "do not send me traffic"
            log.warning("health probe failed", exc_info=True)
            return False
        return True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Consul checks /health?id=<service ID>. When a worker dies and another process takes
        # its address, the dead instance's check must fail rather than pass on the newcomer.
        asked_for = req.get_param("id")
        if asked_for is not None and asked_for != self._instance_id:
            raise NotReady("this address serves another instance")
        if not self.is_healthy():
            raise NotReady("the model cannot predict right now")
        if self._saturated():
            raise Overloaded("this worker has been refusing requests for several seconds in a row")
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]


class IndexResource:
    """GET /: the demo page; read once, served from memory."""

    def __init__(self, page: Path) -> None:
        self._html = page.read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML  # "text/html; charset=utf-8"
        resp.data = self._html
