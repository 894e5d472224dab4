"""The loop: watch Consul, let changes settle, render, and swap the upstream only through a passed nginx -t.

consul-template's manager/runner.go, for one template and one service. The runner composes the
parts and decides the order; each part keeps its own state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from upstream_renderer.dependency import Instance
from upstream_renderer.holddown import Decision, HoldDown
from upstream_renderer.logs import log
from upstream_renderer.nginx import NginxControl
from upstream_renderer.output import UpstreamFile
from upstream_renderer.quiescence import Quiescence
from upstream_renderer.recovery import DEFAULT_RECOVERY_GRACE, Recovery
from upstream_renderer.signals import Signals
from upstream_renderer.template import Template, render_parsed
from upstream_renderer.template.functions import MissingKey
from upstream_renderer.watch import BLOCK_WAIT_SECONDS, DEFAULT_KEY_POLL, Consul, ConsulUnavailable, View


@dataclass
class Outcome:
    """What apply() did: whether nginx got a new upstream, and whether all went well."""

    changed: bool
    ok: bool


class Runner:
    """Watches Consul, renders, and swaps the upstream file only through a passed nginx -t."""

    def __init__(
        self,
        template: Template,
        service: str,
        consul: Consul,
        out: Path,
        nginx: NginxControl,
        wait: tuple[float, float],
        recovery_grace: float = DEFAULT_RECOVERY_GRACE,
        hold_down: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        keys: Callable[[], dict[str, str]] | None = None,
        key_poll: float = DEFAULT_KEY_POLL,
    ):
        self.clock = clock
        self.template = template
        self.signals = Signals()
        self.view = View(consul, service, waiting=self.signals.waiting)
        self.output = UpstreamFile(out)
        self.nginx = nginx
        self.quiescence = Quiescence(wait, clock)
        self.recovery = Recovery(recovery_grace, clock)
        self.hold_down = HoldDown(hold_down, clock)
        # The KV keys the template reads, re-read after every health answer, which then waits at
        # most key_poll: a change of the split reaches nginx within about a second. None: the
        # template's keys are absent (keyOrDefault gives its default).
        self.keys = keys if template.uses_keys() else None
        self.key_poll = key_poll
        self.fetched: list[Instance] = []  # what the newest render was made from
        self.applied: list[Instance] = []  # what the live upstream was made from

    # -- Consul --------------------------------------------------------------
    def fetch(self, wait: float) -> tuple[str, int, bool]:
        """Rendered text, instance count, and whether Consul's index moved."""
        answer = self.view.fetch(wait)
        if answer.reset:
            self.recovery.start("consul lost its state")
        listed = [Instance.from_health_entry(e) for e in answer.entries]
        instances = self.recovery.keep(listed, live=self.applied)
        self.fetched = instances
        service = self.view.service
        count = len(self.template.queries()[0].select(instances, service))
        keys = self.keys() if self.keys is not None else None  # raises ConsulUnavailable: keep the last good
        try:
            text = render_parsed(self.template, instances, service, keys)
        except MissingKey as exc:
            raise ConsulUnavailable(f"template waits for a key: {exc}", reached=True) from exc
        return text, count, answer.moved

    def note_outage(self, exc: ConsulUnavailable, retry_in: float) -> None:
        """Keep the upstream; only an agent that could not be reached may come back forgetful."""
        log.warning(
            "consul unavailable; keeping the last good upstream",
            extra={"fields": {"error": str(exc), "agent_answered": exc.reached, "retry_in_s": retry_in}},
        )
        self.view.restart()
        if exc.reached:
            self.recovery.unanswered()
        else:
            self.recovery.unreachable()

    def settle(self, text: str, count: int) -> tuple[str, int]:
        """The newest render once Consul has been quiet for the wait's MIN (MAX at most)."""
        self.quiescence.start()
        while (remaining := self.quiescence.remaining()) > 0:
            try:
                new_text, new_count, _ = self.fetch(remaining)
            except ConsulUnavailable:
                break
            if new_text != text:
                text, count = new_text, new_count
                self.quiescence.tick()
        return text, count

    # -- applying ------------------------------------------------------------
    def apply(self, text: str, count: int, waited_ms: float = 0.0, decision: Decision | None = None) -> Outcome:
        """Write, nginx -t, reload; on a failed test put the last good file back."""
        output = self.output
        if output.is_live(text):
            return Outcome(changed=False, ok=True)
        if output.is_refused(text):
            return Outcome(changed=False, ok=False)  # already refused; wait for new data
        decision = decision or self.hold_down.decide(output.good, text)
        held_ms = self.hold_down.release()  # this attempt carries a held change, whatever nginx -t says
        started = self.clock()
        output.write(text)
        checked, check_output = self.nginx.check()
        fields: dict[str, Any] = {
            "event": "render",
            "old_count": output.good_count,
            "new_count": count,
            "config_ok": checked,
            "reloaded": False,
            "reload_ok": None,
            "waited_ms": waited_ms,
            "decision": "refused",
            "change": decision.change,
            "reason": decision.reason,
            "held_ms": held_ms,
        }
        if not checked:
            output.refuse(text)
            fields["check_output"] = check_output
            fields["took_ms"] = round((self.clock() - started) * 1000, 1)
            log.error(
                "candidate upstream failed the nginx config test; kept the last good one", extra={"fields": fields}
            )
            return Outcome(changed=False, ok=False)
        reloaded, reload_output = self.nginx.reload()
        output.accept(text, count)
        self.applied = self.fetched
        self.hold_down.applied(decision)
        fields.update(
            reloaded=reloaded is True,
            reload_ok=reloaded,
            decision="reloaded" if reloaded is True else "written",
            took_ms=round((self.clock() - started) * 1000, 1),
        )
        if reloaded is False:
            fields["reload_output"] = reload_output
            log.error("nginx reload failed", extra={"fields": fields})
        else:
            if reloaded is None:
                fields["note"] = reload_output  # why there was no reload (e.g. nginx not running)
            log.info("upstream rendered", extra={"fields": fields})
        return Outcome(changed=True, ok=reloaded is not False)

    def unchanged(self, text: str) -> bool:
        """Nothing to do for this render: it is live, or nginx -t refused it; a held change it
        replaces is dropped when Consul went back to the live upstream."""
        if self.output.is_live(text):
            self.hold_down.withdraw()
        return self.output.is_live(text) or self.output.is_refused(text)

    # -- main loops ----------------------------------------------------------
    def run_once(self, deadline_seconds: float = 10.0) -> int:
        """Render the current state once (retrying Consul briefly); 0 when the file is good."""
        deadline = self.clock() + deadline_seconds
        delay = 0.2
        while True:
            try:
                text, count, _ = self.fetch(0)
                break
            except ConsulUnavailable as exc:
                if self.clock() + delay > deadline:
                    log.error("consul unavailable", extra={"fields": {"error": str(exc)}})
                    return 1
                self.signals.sleep(delay)
                delay = min(delay * 2, 2.0)
        if self.output.is_live(text):
            log.info("upstream unchanged", extra={"fields": {"event": "render", "new_count": count, "reloaded": False}})
            return 0
        once = Decision(True, self.hold_down.decide(self.output.good, text).change, "render once")
        return 0 if self.apply(text, count, decision=once).ok else 1

    def run_forever(self) -> int:
        """Blocking queries until SIGTERM; Consul outages back off and keep the last good file."""
        delay = 0.5
        while not self.signals.stopping:
            try:
                text, count, moved = self.fetch(self.block_for())
            except ConsulUnavailable as exc:
                self.note_outage(exc, delay)
                self.signals.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            if self.output.is_live(text):
                self.output.good_count = count
            if self.unchanged(text):
                if moved:
                    log.debug("consul changed, upstream did not", extra={"fields": {"index": self.view.index}})
                continue
            started = self.clock()
            if moved or not self.hold_down.holds(text):
                text, count = self.settle(text, count)
                if self.unchanged(text):
                    continue
            waited_ms = round((self.clock() - started) * 1000, 1)
            decision = self.hold_down.decide(self.output.good, text)
            if decision.apply:
                self.apply(text, count, waited_ms=waited_ms, decision=decision)
            else:
                self.hold_down.hold(text, count, decision, self.output.good_count)
        return 0

    def block_for(self) -> float:
        """How long the next blocking query may wait: less when the grace or a hold-down ends sooner."""
        block = BLOCK_WAIT_SECONDS if self.keys is None else min(BLOCK_WAIT_SECONDS, self.key_poll)
        if self.recovery.active():
            # Wake up when the grace ends, to drop what never came back.
            block = min(block, max(self.recovery.ends_in(), 0.05))
        due_at = self.hold_down.due_at()
        if due_at is not None:
            # Consul lengthens a blocking wait by up to 1/16: ask for less, so the poll ends by the due time.
            block = min(block, max((due_at - self.clock()) * 16 / 17, 0.01))
        return block
