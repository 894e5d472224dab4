"""/health says 429 (Consul "warning") only while refusals are sustained, never for a single one."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from tests.unit.fake_backend import FakeBackend, refuse_until_saturated, refusing_client
from worker.admission import AdmissionPolicy
from worker.errors import Overloaded
from worker.metrics import Metrics
from worker.predictor import Predictor
from worker.saturation import SustainedRefusals


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tracker(clock: Clock, **kwargs) -> SustainedRefusals:
    return SustainedRefusals(window_seconds=1.0, windows=3, min_ratio=0.05, clock=clock, **kwargs)


def refuse_in_windows(
    refusals: SustainedRefusals, clock: Clock, windows: int, answered: int = 0, refused: int = 1
) -> None:
    """Some outcomes in each of the next `windows` windows, leaving the clock in the window after."""
    for _ in range(windows):
        for _ in range(answered):
            refusals.record(refused=False)
        for _ in range(refused):
            refusals.record(refused=True)
        clock.now += 1.0


# ------------------------------------------------------------------ the tracker, on an injected clock


def test_a_single_refusal_never_makes_a_worker_saturated():
    clock = Clock()
    refusals = tracker(clock)
    refusals.record(refused=True)
    for _ in range(8):
        assert not refusals.saturated()
        clock.now += 0.5


def test_refusals_in_each_of_three_whole_windows_in_a_row_make_it_saturated():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 2)
    assert not refusals.saturated()
    refuse_in_windows(refusals, clock, 1)
    assert refusals.saturated()


def test_the_window_still_under_way_does_not_count():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 2)
    refusals.record(refused=True)  # third window, not over yet
    clock.now += 0.9
    assert not refusals.saturated()


def test_a_window_without_refusals_breaks_the_run():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 2)
    refuse_in_windows(refusals, clock, 1, answered=10, refused=0)
    refuse_in_windows(refusals, clock, 2)
    assert not refusals.saturated()


def test_a_quiet_window_without_any_request_breaks_the_run_too():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 2)
    clock.now += 1.0
    refuse_in_windows(refusals, clock, 2)
    assert not refusals.saturated()


def test_health_recovers_one_whole_window_after_the_refusals_stop():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 4)
    assert refusals.saturated()
    refuse_in_windows(refusals, clock, 1, answered=5, refused=0)
    assert not refusals.saturated()


def test_a_trickle_of_refusals_below_the_ratio_is_not_saturation():
    clock = Clock()
    refusals = tracker(clock)
    refuse_in_windows(refusals, clock, 5, answered=100, refused=2)  # 2 % of each window
    assert not refusals.saturated()
    refuse_in_windows(refusals, clock, 3, answered=100, refused=10)  # 9 %
    assert refusals.saturated()


def test_a_tracker_needs_sensible_windows():
    with pytest.raises(ValueError):
        SustainedRefusals(window_seconds=0)
    with pytest.raises(ValueError):
        SustainedRefusals(min_ratio=0)


# ------------------------------------------------------------------ the predictor feeds the tracker


def test_predictor_is_saturated_once_its_refusals_span_three_windows():
    backend, clock = FakeBackend(), Clock()
    backend.gate = threading.Event()
    predictor = Predictor(
        backend,
        Metrics(None),
        max_inflight=1,
        policy=AdmissionPolicy(deadline_seconds=0.0, max_queue=1),
        refusals=tracker(clock),
    )
    holder = threading.Thread(target=predictor.predict, args=(["北京"],))
    holder.start()
    assert backend.entered.wait(5)
    try:
        for _ in range(3):
            with pytest.raises(Overloaded):
                predictor.predict(["北京"])
            assert not predictor.saturated()
            clock.now += 1.0
        assert predictor.saturated()
    finally:
        backend.gate.set()
        holder.join(5)


# ------------------------------------------------------------------ /health through the app


@pytest.fixture
def saturated_client() -> Iterator[tuple]:
    """A client whose only inference slot is held by a request that waits on a gate; no queue wait."""
    backend = FakeBackend()
    backend.gate = threading.Event()
    client = refusing_client(backend)
    holder = threading.Thread(target=client.simulate_post, args=("/v1/ner",), kwargs={"json": {"text": "北京"}})
    holder.start()
    assert backend.entered.wait(5)
    try:
        yield client, backend
    finally:
        backend.gate.set()
        holder.join(5)


def test_health_stays_200_while_slots_are_busy_but_nothing_was_refused(saturated_client):
    client, _ = saturated_client
    assert client.simulate_get("/health").status_code == 200


def test_health_stays_200_after_a_single_refusal(saturated_client):
    client, _ = saturated_client
    assert client.simulate_post("/v1/ner", json={"text": "北京"}).status_code == 429
    for _ in range(5):
        assert client.simulate_get("/health").status_code == 200
        time.sleep(0.03)


def test_health_is_429_json_with_retry_after_while_refusals_are_sustained(saturated_client):
    client, _ = saturated_client
    refuse_until_saturated(client)
    result = client.simulate_get("/health")
    assert result.status_code == 429
    assert result.headers["Retry-After"] == "1"
    assert set(result.json) == {"title", "description"}


def test_saturated_health_body_is_identical_across_calls(saturated_client):
    client, _ = saturated_client
    refuse_until_saturated(client)
    bodies = {client.simulate_get("/health").text for _ in range(3)}
    assert len(bodies) == 1


def test_health_is_503_not_429_when_the_model_is_broken_as_well(saturated_client):
    client, backend = saturated_client
    refuse_until_saturated(client)
    backend.fail_probe = True
    assert client.simulate_get("/health").status_code == 503
