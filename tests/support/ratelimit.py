"""The gateway's per-client rate limit, as one client running into it sees it."""

from __future__ import annotations

import requests


def requests_until_limited(url: str, max_requests: int) -> tuple[list[int], requests.Response | None]:
    """Cheap GETs back to back (the worker answers 405) until the gateway answers 429; bounded."""
    statuses = []
    for _ in range(max_requests):
        response = requests.get(url, timeout=5)
        statuses.append(response.status_code)
        if response.status_code == 429:
            return statuses, response
    return statuses, None


def assert_gateway_429(response: requests.Response) -> None:
    """The gateway's own rate-limit answer: a JSON problem with Retry-After and a request ID."""
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-Id"]
    assert set(response.json()) == {"title", "description"}
    assert response.json()["title"].startswith("429")
