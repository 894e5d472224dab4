"""A small paced HTTP load generator whose every request is timestamped and identifiable.

Threads with keep-alive `http.client` connections, because the chaos figures need the
exact send time, status and serving worker of each request, and the generator's own CPU
time must be reportable beside every result (the machine has 2 cores).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

TEXT = {"text": "张三在北京的清华大学工作。"}
# Errors on a reused keep-alive connection before any byte of the answer: the server (or a
# reloading gateway) closed it while idle. The request never ran, so it is safe to send again.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the client saw it."""

    kind: str
    request_id: str
    sent_at: float
    latency: float
    status: int | None
    worker: str | None
    error: str | None = None
    retried: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Client:
    """One keep-alive connection; `retry_stale` resends once on a reset idle connection."""

    def __init__(self, url: str, timeout: float, retry_stale: bool) -> None:
        parts = urlsplit(url)
        self._host, self._port, self._path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self._timeout = timeout
        self._retry_stale = retry_stale
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._reused = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def post(self, body: bytes, request_id: str) -> tuple[int, str | None, bool]:
        """Status, serving worker, and whether a stale connection forced a resend."""
        headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
        try:
            return (*self._once(body, headers), False)
        except _STALE_CONNECTION:
            was_reused = self._reused
            self.close()
            if not (self._retry_stale and was_reused):
                raise
        return (*self._once(body, headers), True)

    def _once(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except BaseException:
            self.close()
            raise
        self._reused = True
        if response.will_close:
            self.close()
        return response.status, response.getheader("X-Worker-Id")


@dataclass
class PacedLoad:
    """`rate` requests/s over `threads` connections per client kind, until stopped or `max_seconds`."""

    url: str
    rate: float
    threads: int = 4
    kinds: tuple[str, ...] = ("retrying", "naive")
    timeout: float = 10.0
    max_seconds: float = 120.0
    payload: dict = field(default_factory=lambda: dict(TEXT))
    records: list[Record] = field(default_factory=list)
    cpu_seconds: float = 0.0
    started_at: float = 0.0
    stopped_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "PacedLoad":
        self.started_at = time.monotonic()
        per_thread = self.rate / (self.threads * len(self.kinds))
        for kind in self.kinds:
            for index in range(self.threads):
                offset = index / self.rate * len(self.kinds) if self.rate > 0 else 0.0
                thread = threading.Thread(
                    target=self._run, args=(kind, index, per_thread, offset), daemon=True, name=f"load-{kind}-{index}"
                )
                self._pool.append(thread)
                thread.start()
        return self

    def _run(self, kind: str, index: int, rate: float, offset: float) -> None:
        client = Client(self.url, self.timeout, retry_stale=(kind == "retrying"))
        text = self.payload["text"]
        interval = 1.0 / rate if rate > 0 else 0.0
        deadline = self.started_at + self.max_seconds
        next_at = self.started_at + offset
        sequence = 0
        cpu_start = time.thread_time()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if next_at > now:
                self._stop.wait(next_at - now)
                continue
            next_at = max(next_at + interval, now) if interval else now
            sequence += 1
            request_id = f"{kind}-{index}-{sequence}"
            # A text never sent before: the workers' result cache must not answer for the model.
            body = json.dumps({"text": f"{request_id}：{text}"}, ensure_ascii=False).encode()
            sent = time.monotonic()
            try:
                status, worker, retried = client.post(body, request_id)
                record = Record(kind, request_id, sent, time.monotonic() - sent, status, worker, retried=retried)
            except (OSError, http.client.HTTPException) as error:
                record = Record(kind, request_id, sent, time.monotonic() - sent, None, None, error=type(error).__name__)
            with self._lock:
                self.records.append(record)
        client.close()
        with self._lock:
            self.cpu_seconds += time.thread_time() - cpu_start

    def stop(self) -> "PacedLoad":
        self._stop.set()
        for thread in self._pool:
            thread.join(timeout=self.timeout + 5)
        self.stopped_at = time.monotonic()
        return self


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def latency_ms(records: Iterable[Record]) -> dict[str, float | None]:
    """p50/p95/p99 of answered requests, in milliseconds."""
    values = [r.latency * 1000 for r in records if r.status is not None]
    return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}


def measure_capacity(url: str, seconds: float = 6.0, threads: int = 8) -> tuple[float, float]:
    """Successful requests/s with `threads` unpaced connections, and the generator CPU it took."""
    load = PacedLoad(url, rate=0, threads=threads, kinds=("retrying",), max_seconds=seconds).start()
    time.sleep(seconds)
    load.stop()
    ok = sum(1 for r in load.records if r.ok)
    return ok / seconds, load.cpu_seconds
