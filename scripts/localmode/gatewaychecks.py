"""What the gateway answers: whether it serves, and whether every passing worker answers through it."""

from __future__ import annotations

from typing import Callable

import requests

from scripts.localmode.waiting import wait_for

PROBE = {"text": "张三在北京工作。"}


def gateway_alive(gateway_url: str) -> bool:
    return requests.get(f"{gateway_url}/gateway/health", timeout=2).ok


def wait_serving(gateway_url: str, timeout: float = 30) -> float:
    """Wait until a real NER request succeeds through the gateway."""
    return wait_for(
        lambda: requests.post(f"{gateway_url}/v1/ner", json=PROBE, timeout=5).status_code == 200,
        timeout,
        "a request to succeed through the gateway",
    )


def wait_routes_to_all(
    gateway_url: str, wanted: set[str], timeout: float = 15, say: Callable[[str], None] = lambda message: None
) -> float | None:
    """Wait until every instance ID in wanted has answered through the gateway (X-Worker-Id).

    Consul reports a new worker passing a moment before the renderer has rewritten the
    upstream and reloaded nginx; callers that go on to spread requests need the latter.
    Returns the seconds taken, or None (with a message) if not seen in time.
    """
    seen: set[str] = set()

    def all_seen() -> bool:
        response = requests.post(f"{gateway_url}/v1/ner", json=PROBE, timeout=5)
        if response.status_code == 200:
            seen.add(response.headers.get("X-Worker-Id", ""))
        return wanted <= seen

    try:
        return wait_for(all_seen, timeout, "every passing worker to answer through the gateway", interval=0.05)
    except TimeoutError:
        say(f"gateway: not yet routing to {', '.join(sorted(wanted - seen))} after {timeout:.0f}s")
        return None
