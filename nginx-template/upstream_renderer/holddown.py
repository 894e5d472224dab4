"""Reload hold-down: a change of weights only reaches nginx at most once per interval; joins, leaves and
changes of the version split or pins at once.

Every reload closes idle client keep-alive connections, and an overloaded worker's health flaps
between passing and warning every few seconds. consul-template has no such rule (only its wait).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from upstream_renderer.logs import log

# Weight-only reloads at most every 15 s: several passing/warning flaps of an overloaded worker
# (its warning lasts seconds) become one reload, and a worker's weight is never more than 15 s
# behind its health, which bounds how long a recovered worker runs at a tenth of its share.
DEFAULT_HOLD_DOWN = "15s"
HOLD_DOWN_ENV = "NER_RENDER_HOLD_DOWN"

SERVER_DIRECTIVE_RE = re.compile(r"\s*server\s+([^\s;]+)")
UPSTREAM_RE = re.compile(r"\s*upstream\s+(\S+)\s*\{")
ROUTING_BLOCK_RE = re.compile(r"\s*(split_clients|map)\s")


def upstream_members(text: str) -> tuple[str, ...]:
    """The `server address:port` entries of a rendered upstream, sorted and each once: what nginx routes to."""
    members = set()
    for line in text.splitlines():
        match = SERVER_DIRECTIVE_RE.match(line.split("#", 1)[0])
        if match:
            members.add(match.group(1))
    return tuple(sorted(members))


def routing(text: str) -> tuple[str, ...]:
    """Which upstream holds which member, and every line of the split and the pin maps: a change of
    these moves requests between model versions, so it is never held."""
    lines, upstream, in_routing = [], "", False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if match := UPSTREAM_RE.match(line):
            upstream = match.group(1)
        elif match := SERVER_DIRECTIVE_RE.match(line):
            lines.append(f"{upstream} {match.group(1)}")
        elif ROUTING_BLOCK_RE.match(line):
            in_routing = True
        if in_routing and line.strip():
            lines.append(line.strip())
        if line.strip() == "}":
            in_routing = False
    return tuple(sorted(lines))


@dataclass(frozen=True)
class Decision:
    """Whether a rendered change may reach nginx now, what kind of change it is, and why."""

    apply: bool
    change: str  # "first" (no live upstream), "membership" or "weights"
    reason: str
    due_at: float | None = None  # a held change may be applied from then on


@dataclass(frozen=True)
class Held:
    """A weight-only change waiting for its hold-down to pass."""

    text: str
    count: int
    decision: Decision
    since: float


class HoldDown:
    """Weight-only reloads at most once per interval, and the change it holds back meanwhile."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.last_weights_reload: float | None = None
        self.held: Held | None = None

    def decide(self, live: str | None, candidate: str) -> Decision:
        """Judge a candidate upstream against the live one."""
        if live is None:
            return Decision(True, "first", "no live upstream yet")
        if upstream_members(live) != upstream_members(candidate):
            return Decision(True, "membership", "an instance joined or left")
        if routing(live) != routing(candidate):
            return Decision(True, "split", "the version split, the pins or an instance's version changed")
        if self.interval <= 0:
            return Decision(True, "weights", "hold-down off")
        due_at = None if self.last_weights_reload is None else self.last_weights_reload + self.interval
        if due_at is None or self.clock() >= due_at:
            return Decision(True, "weights", "no weight-only reload within the hold-down")
        return Decision(False, "weights", "weight-only change within the hold-down", due_at)

    def applied(self, decision: Decision) -> None:
        """Start the interval when a weight-only change reached nginx."""
        if decision.change == "weights":
            self.last_weights_reload = self.clock()

    def hold(self, text: str, count: int, decision: Decision, live_count: int | None) -> None:
        """Keep a weight-only change until its hold-down passes; log it once per distinct upstream."""
        since = self.held.since if self.held is not None else self.clock()
        fresh = self.held is None or self.held.text != text
        self.held = Held(text, count, decision, since)
        if fresh:
            log.info(
                "weight-only change held down",
                extra={
                    "fields": {
                        "event": "render",
                        "decision": "held",
                        "change": decision.change,
                        "reason": decision.reason,
                        "old_count": live_count,
                        "new_count": count,
                        "reloaded": False,
                        "due_in_ms": round(max((decision.due_at or 0) - self.clock(), 0) * 1000, 1),
                    }
                },
            )

    def holds(self, text: str) -> bool:
        """Whether this rendered text is the change being held."""
        return self.held is not None and self.held.text == text

    def due_at(self) -> float | None:
        """When the held change may be applied (None: nothing held)."""
        return None if self.held is None else self.held.decision.due_at

    def withdraw(self) -> None:
        """Consul went back to the live upstream: the held change is dropped, never applied."""
        if self.held is not None:
            log.info(
                "held change withdrawn: consul is back to the live upstream",
                extra={"fields": {"event": "render", "decision": "withdrawn", "reloaded": False}},
            )
            self.held = None

    def release(self) -> float | None:
        """A render is being applied, which carries any held change: how long it was held, in ms."""
        held_ms = None if self.held is None else round((self.clock() - self.held.since) * 1000, 1)
        self.held = None
        return held_ms
