"""Canary, promote and roll back a model version through Consul: shares in KV, drains, and the watch that
rolls a failing canary back by itself."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from registrar.config import RegistrarConfig
from registrar.inventory import Instance, agent_for, list_instances
from registrar.kv import RolloutError, RolloutStore
from registrar.registration import Registrar
from registrar.versions import Counters, by_version, counters_by_instance

# The automatic rollback: the canary's share of 5xx answers over the bound, once it has answered
# at least MIN_REQUESTS since the rollout began, rolls it back. 2 % of a 10 % canary is 0.2 % of
# all requests, under the 99.9 % objective's monthly budget for the minute a watch lasts.
DEFAULT_MAX_ERROR_RATIO = 0.02
DEFAULT_MIN_REQUESTS = 20
DEFAULT_WATCH_SECONDS = 60.0
DEFAULT_CHECK_EVERY = 1.0
DRAIN_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class WatchResult:
    """How a watch ended: rolled back or not, after how long, on what counts."""

    rolled_back: bool
    seconds: float
    counters: Counters
    reason: str


class Rollout:
    """The operations on one service's versions; say() reports each step to the operator."""

    def __init__(
        self,
        config: RegistrarConfig,
        client: Any,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client
        self.store = RolloutStore(client)
        self.say = say
        self.sleep = sleep
        self.clock = clock

    def instances(self) -> list[Instance]:
        return list_instances(self.client, self.config.service_name)

    def live_versions(self) -> list[str]:
        return sorted({i.model_label for i in self.instances() if i.status in ("passing", "warning")})

    def _require_live(self, ref: str) -> None:
        live = self.live_versions()
        if ref not in live:
            raise RolloutError(f"no passing instance serves {ref}; live versions: {', '.join(live) or 'none'}")

    # -- shares ------------------------------------------------------------------------------
    def canary(self, ref: str, share: float) -> dict[str, float]:
        """ref gets `share` percent; the rest is spread over the other live versions as their shares stand."""
        self._require_live(ref)
        others = [v for v in self.live_versions() if v != ref]
        if not others and share < 100:
            raise RolloutError(f"{ref} is the only live version: nothing to share the rest with")
        current = self.store.shares()
        weights = {v: current.get(v, 100.0 / len(others)) for v in others} if others else {}
        total = sum(weights.values()) or 1.0
        shares = {v: round((100.0 - share) * w / total, 2) for v, w in weights.items()}
        shares[ref] = share
        _fix_rounding(shares, keep=ref)
        self.store.set_shares(shares, canary=ref)
        self.say(f"shares: {_describe(shares)} (canary {ref})")
        return shares

    def promote(self, ref: str | None = None) -> str:
        """All requests to ref (default: the canary), then drain the other versions' instances."""
        ref = ref or self.store.canary()
        if ref is None:
            raise RolloutError("no canary in Consul (ner/rollout/canary): name the version to promote")
        self._require_live(ref)
        self.store.set_shares({ref: 100.0}, canary=None)
        self.say(f"shares: {ref} 100 % (promoted)")
        return ref

    def rollback(self, ref: str | None = None) -> str:
        """No requests to ref (default: the canary): the others share everything as before."""
        ref = ref or self.store.canary()
        if ref is None:
            raise RolloutError("no canary in Consul (ner/rollout/canary): name the version to roll back")
        current = self.store.shares()
        others = [v for v in self.live_versions() if v != ref]
        if not others:
            raise RolloutError(f"{ref} is the only live version: rolling it back would leave nothing to serve")
        weights = {v: current.get(v, 1.0) for v in others}
        total = sum(weights.values()) or 1.0
        shares = {v: round(100.0 * w / total, 2) for v, w in weights.items()}
        _fix_rounding(shares, keep=None)
        self.store.set_shares(shares, canary=None)
        self.say(f"shares: {_describe(shares)} ({ref} rolled back)")
        return ref

    # -- instances ---------------------------------------------------------------------------
    def drain_others(self, keep: str) -> list[Instance]:
        """Maintenance on every instance not of `keep`, waiting until Consul no longer lists them passing."""
        return self.drain([i for i in self.instances() if i.model_label != keep])

    def drain_version(self, ref: str) -> list[Instance]:
        return self.drain([i for i in self.instances() if i.model_label == ref])

    def drain(self, instances: Sequence[Instance]) -> list[Instance]:
        for instance in instances:
            registrar = Registrar(self.config, instance.id, client=agent_for(self.config, self.client, instance), pid=0)
            registrar.set_maintenance(True, "drained by rollout")
            if registrar.wait_until_not_passing(DRAIN_WAIT_SECONDS) is None:
                self.say(f"{instance.id}: still passing after {DRAIN_WAIT_SECONDS:g}s")
        if instances:
            self.say(f"drained {len(instances)} instance(s): {', '.join(i.id for i in instances)}")
        return list(instances)

    # -- the watch -----------------------------------------------------------------------------
    def watch(
        self,
        ref: str,
        seconds: float = DEFAULT_WATCH_SECONDS,
        max_error_ratio: float = DEFAULT_MAX_ERROR_RATIO,
        min_requests: int = DEFAULT_MIN_REQUESTS,
        every: float = DEFAULT_CHECK_EVERY,
    ) -> WatchResult:
        """Compare the canary's 5xx ratio with the bound for `seconds`; over it, roll back at once."""
        started = self.clock()
        baseline = counters_by_instance(self.instances())
        seen = Counters()
        while (elapsed := self.clock() - started) < seconds:
            self.sleep(every)
            instances = self.instances()
            seen = by_version(instances, counters_by_instance(instances), baseline).get(ref, Counters())
            if seen.requests >= min_requests and seen.error_ratio > max_error_ratio:
                reason = (
                    f"{ref} answered {seen.errors:.0f} of {seen.requests:.0f} requests with 5xx "
                    f"({100 * seen.error_ratio:.1f} % > {100 * max_error_ratio:g} %)"
                )
                self.say(f"automatic rollback: {reason}")
                self.rollback(ref)
                return WatchResult(True, self.clock() - started, seen, reason)
        reason = f"{ref}: {seen.errors:.0f} of {seen.requests:.0f} requests 5xx in {elapsed:.0f}s, within the bound"
        self.say(f"watch ended: {reason}")
        return WatchResult(False, self.clock() - started, seen, reason)


def _fix_rounding(shares: dict[str, float], keep: str | None) -> None:
    """Make the shares add up to exactly 100 by moving the rounding error onto one version."""
    error = round(100.0 - sum(shares.values()), 2)
    if error and shares:
        target = next((v for v in sorted(shares) if v != keep), keep)
        shares[target] = round(shares[target] + error, 2)


def _describe(shares: dict[str, float]) -> str:
    return ", ".join(f"{ref} {value:g} %" for ref, value in sorted(shares.items()))
