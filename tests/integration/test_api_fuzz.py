"""Requests generated from the published OpenAPI document never get a 5xx or break the worker."""

from __future__ import annotations

import requests

from bench.fuzz_api import fuzz
from scripts.localcluster import child_pids


def test_a_few_hundred_generated_requests_get_no_5xx_and_leave_the_worker_serving(cluster):
    cluster.up(2)
    worker = next(iter(cluster.workers().values()))
    url = f"http://127.0.0.1:{worker.port}"
    children = child_pids(worker.pid)
    result = fuzz(url, cases=300, seed=1)
    assert result.total >= 100, result.by_operation
    assert result.server_errors == []
    assert dict(result.transport_errors) == {}
    assert result.non_json_errors == []
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert child_pids(worker.pid) == children
