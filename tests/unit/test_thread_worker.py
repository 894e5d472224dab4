"""The gunicorn worker charges a request's wait for a pool thread to its queue deadline."""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

from worker.admission import AdmissionPolicy
from worker.thread_worker import DeadlineThreadWorker


class Conn:
    """What the worker hands from its main loop to a pool thread (only the stamp matters here)."""


def test_the_time_a_connection_waited_for_a_pool_thread_is_taken_off_the_deadline(monkeypatch):
    policy = AdmissionPolicy(deadline_seconds=0.5, max_queue=4)
    seen = []
    monkeypatch.setattr(ThreadWorker, "enqueue_req", lambda self, conn: None)
    monkeypatch.setattr(ThreadWorker, "handle", lambda self, conn: seen.append(policy.budget()) or "kept-alive")
    worker = DeadlineThreadWorker.__new__(DeadlineThreadWorker)  # no sockets or pool needed
    conn = Conn()
    worker.enqueue_req(conn)
    time.sleep(0.3)
    assert worker.handle(conn) == "kept-alive"
    [budget] = seen
    assert 0.0 < budget <= 0.2
    assert policy.budget() == 0.5  # outside the request, nothing is charged


def test_a_connection_never_stamped_is_charged_nothing(monkeypatch):
    policy = AdmissionPolicy(deadline_seconds=0.5, max_queue=4)
    seen = []
    monkeypatch.setattr(ThreadWorker, "handle", lambda self, conn: seen.append(policy.budget()))
    DeadlineThreadWorker.__new__(DeadlineThreadWorker).handle(Conn())
    assert seen == [0.5]
