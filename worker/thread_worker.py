"""gunicorn's gthread worker, with each request's wait for a pool thread charged to its queue deadline.

gthread hands a readable connection to a pool of `threads` threads; when every thread is busy
the connection waits in the pool's own queue, where the app cannot see it. Under overload that
wait grows without bound, and /health waits there too. Stamping the hand-over lets admission
count the wait against the request's deadline (worker.admission.waited_before): a request that
already waited its deadline is refused at once, which drains the pool queue instead of growing it.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

from worker.admission import waited_before


class DeadlineThreadWorker(ThreadWorker):
    """gthread, stamping when each connection was handed to the thread pool."""

    def enqueue_req(self, conn) -> None:
        conn.ner_enqueued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn):
        enqueued_at = getattr(conn, "ner_enqueued_at", None)
        waited = 0.0 if enqueued_at is None else time.monotonic() - enqueued_at
        with waited_before(waited):
            return super().handle(conn)
