"""The recovery grace: while Consul comes back, instances it does not list again yet stay in the upstream."""

from __future__ import annotations

import time
from typing import Callable

from upstream_renderer.dependency import Instance
from upstream_renderer.logs import log

# After Consul was unreachable or lost its state (a restarted dev agent), workers register
# again within seconds (their registrar re-checks every 2 s): until then an instance that
# seems to be gone is kept in the upstream, so the gateway does not turn away traffic.
DEFAULT_RECOVERY_GRACE = 15.0


class Recovery:
    """For `grace` seconds after an outage or a state loss, Consul's list is not the last word."""

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic):
        self.grace = grace
        self.clock = clock
        self.until = 0.0
        self.last_healthy: dict[str, float] = {}  # instance ID -> when Consul last listed it healthy
        self.unanswered_since: float | None = None  # the first failed read since Consul last answered

    def start(self, reason: str) -> None:
        """Hold on to the instances we route to while their registrations come back."""
        self.until = self.clock() + self.grace
        log.warning(
            "keeping current instances while consul recovers",
            extra={"fields": {"reason": reason, "grace_s": self.grace}},
        )

    def unreachable(self) -> None:
        """Consul could not be read: start the grace, and stop the clock of every instance's last
        healthy listing until it answers, since an outage is not Consul saying a worker is gone."""
        if self.unanswered_since is None:
            self.unanswered_since = self.clock()
        self.start("consul unreachable")

    def unanswered(self) -> None:
        """Consul answered with an error: its catalog stands, but nothing was listed meanwhile."""
        if self.unanswered_since is None:
            self.unanswered_since = self.clock()

    def active(self) -> bool:
        return self.clock() < self.until

    def ends_in(self) -> float:
        """Seconds until the grace ends (negative once it has)."""
        return self.until - self.clock()

    def keep(self, listed: list[Instance], live: list[Instance]) -> list[Instance]:
        """During recovery, instances of the live upstream stay while Consul does not list them (yet),
        or lists them critical before any check has run: a fresh registration is critical until its
        first check passes. One whose check ran and failed, or in maintenance, is let go at once, and
        one Consul has not listed healthy for the grace (counting only time Consul answered) is let go
        too, however often Consul restarts: repeated recoveries must not keep dead workers in the
        upstream, where the gateway would spend its tries on them."""
        now = self.clock()
        if self.unanswered_since is not None:
            silent = now - self.unanswered_since
            self.last_healthy = {key: seen + silent for key, seen in self.last_healthy.items()}
            self.unanswered_since = None
        for instance in listed:
            if instance.status in ("passing", "warning"):
                self.last_healthy[instance.id] = now
        if not self.active():
            return listed
        current = {i.id: i for i in listed}
        # An address Consul now lists under another ID has a new owner (a restarted worker on the
        # same port): the old instance is gone, and keeping it would route to the newcomer before
        # its model is loaded.
        owners = {(i.address, i.port): i.id for i in listed}
        for kept in live:
            if owners.get((kept.address, kept.port), kept.id) != kept.id:
                continue
            if now - self.last_healthy.get(kept.id, now) >= self.grace:
                continue
            seen = current.get(kept.id)
            if seen is None or (seen.status == "critical" and not seen.failed_check):
                current[kept.id] = kept
        return list(current.values())
