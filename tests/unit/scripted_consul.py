"""A scripted Consul and a recording nginx for running the renderer's loop on a fake clock.

A blocking query advances the clock to the next change or to the end of its wait, so minutes
of changes take milliseconds and no test sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fake_clock import FakeClock
from upstream_renderer.dependency import Instance
from upstream_renderer.runner import Runner
from upstream_renderer.signals import Shutdown
from upstream_renderer.template import Template, render_parsed

NGINX_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx-template"
TEMPLATE = Template.parse((NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text())
WAIT = (0.2, 2.0)

Timeline = list[tuple[float, dict[str, str]]]  # (from when, {"p<port>": status}) in time order


def entry(port: int, status: str = "passing") -> dict:
    """A /v1/health/service element for a worker on 127.0.0.1:port."""
    return {
        "Node": {"Node": "n1", "Address": "127.0.0.1"},
        "Service": {"ID": f"w{port}", "Service": "ner-worker", "Address": "127.0.0.1", "Port": port},
        "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": f"service:w{port}", "Status": status}],
    }


def upstream(**statuses: str) -> str:
    """The rendered upstream for workers named p<port>=status."""
    return render_parsed(
        TEMPLATE, [Instance.from_health_entry(entry(int(name[1:]), status)) for name, status in statuses.items()]
    )


class ScriptedConsul:
    """Consul states switching at given times; a blocking query returns at the next switch or its wait."""

    def __init__(self, clock: FakeClock, timeline: Timeline, end: float) -> None:
        self.clock, self.timeline, self.end = clock, timeline, end

    def _state(self, index: int) -> list[dict]:
        return [entry(int(name[1:]), status) for name, status in self.timeline[index - 1][1].items()]

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        current = sum(1 for at, _ in self.timeline if at <= self.clock.now)
        if index == 0 or current > index:
            return self._state(current), current
        wake = self.clock.now + wait
        if current < len(self.timeline) and self.timeline[current][0] <= wake:
            self.clock.now = self.timeline[current][0]
            return self._state(current + 1), current + 1
        if wake > self.end:
            raise Shutdown()
        self.clock.now = wake
        return self._state(current), current


class FakeNginx:
    """Passes every config test; records when each reload happened and what it loaded."""

    def __init__(self, clock: FakeClock, out: Path) -> None:
        self.clock, self.out = clock, out
        self.reloads: list[tuple[float, str]] = []

    def check(self) -> tuple[bool, str]:
        return True, ""

    def reload(self) -> tuple[bool, str]:
        self.reloads.append((self.clock.now, self.out.read_text()))
        return True, ""


def run(
    tmp_path: Path, timeline: Timeline, end: float, hold_down: float, wait: tuple[float, float] = WAIT
) -> FakeNginx:
    """The renderer's loop over the whole timeline; nginx's reloads."""
    clock = FakeClock()
    out = tmp_path / "upstream.conf"
    nginx = FakeNginx(clock, out)
    runner = Runner(
        TEMPLATE, "ner-worker", ScriptedConsul(clock, timeline, end), out, nginx, wait, hold_down=hold_down, clock=clock
    )
    with pytest.raises(Shutdown):
        runner.run_forever()
    return nginx
