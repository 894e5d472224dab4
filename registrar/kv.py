"""The rollout's state in Consul's KV store: each model version's share of requests, and the canary.

Layout (read by the gateway's upstream, nginx-template/upstream.ctmpl):
    ner/rollout/weights/<name@version>   percent of requests for that version ("10", "12.5")
    ner/rollout/canary                   name@version being rolled out; absent when none is
What the listed shares leave goes to every live instance, whatever its version.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

PREFIX = "ner/rollout/"
WEIGHTS = PREFIX + "weights/"
CANARY = PREFIX + "canary"
KEEP_CANARY = "<keep>"  # set_shares: leave the canary key as it is


class RolloutError(RuntimeError):
    """An operator request the rollout cannot carry out; the message says why."""


def weight_key(ref: str) -> str:
    return WEIGHTS + ref


def parse_share(text: str) -> float:
    """A percentage 0-100, as the gateway's split_clients takes it (at most two decimals)."""
    try:
        value = round(float(text), 2)
    except ValueError:
        raise RolloutError(f"share must be a number of percent, got {text!r}") from None
    if not 0 <= value <= 100:
        raise RolloutError(f"share must be between 0 and 100 percent, got {text}")
    return value


def format_share(value: float) -> str:
    """ "10", "12.5": what the template writes before "%"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


class RolloutStore:
    """Reads and writes the layout above through a py-consul client; every write of shares is one transaction."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def shares(self) -> dict[str, float]:
        """name@version -> percent, for every version with a key."""
        _, items = self.client.kv.get(WEIGHTS, recurse=True)
        found = {}
        for item in items or []:
            raw = (item.get("Value") or b"").decode("utf-8").strip()
            if raw:
                found[item["Key"][len(WEIGHTS) :]] = parse_share(raw)
        return found

    def canary(self) -> str | None:
        _, item = self.client.kv.get(CANARY)
        value = (item or {}).get("Value") or b""
        return value.decode("utf-8").strip() or None

    def set_shares(
        self, shares: Mapping[str, float], canary: str | None = KEEP_CANARY, drop_others: bool = True
    ) -> None:
        """Write these shares at once (the gateway never sees a half-written split); drop other
        versions' keys; canary: set it (a ref), clear it (None) or leave it (omitted)."""
        total = sum(shares.values())
        if total > 100.0001:
            raise RolloutError(f"shares add up to {format_share(total)} %, more than 100 %")
        ops: list[dict[str, Any]] = [
            {"KV": {"Verb": "set", "Key": weight_key(ref), "Value": _b64(format_share(value))}}
            for ref, value in shares.items()
        ]
        if drop_others:
            ops += [{"KV": {"Verb": "delete", "Key": weight_key(ref)}} for ref in self.shares() if ref not in shares]
        if canary is None:
            ops.append({"KV": {"Verb": "delete", "Key": CANARY}})
        elif canary != KEEP_CANARY:
            ops.append({"KV": {"Verb": "set", "Key": CANARY, "Value": _b64(canary)}})
        self.client.txn.put(ops)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
