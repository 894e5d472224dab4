"""How the renderer reads Consul: stale-tolerant long polls, and which failures mean a restart."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from upstream_renderer.nginx import NginxControl
from upstream_renderer.runner import Runner
from upstream_renderer.template import Template
from upstream_renderer.watch import Consul, ConsulUnavailable, View, next_index, parse_wait

NGINX_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx-template"


class FakeAgent:
    """A stand-in for the agent's /v1/health/service endpoint that records every query."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.last_contact_ms = 0
        self.status = 200
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                agent.queries.append(query)
                stale = "stale" in query
                body = json.dumps([{"answered_by": "follower" if stale else "leader"}]).encode()
                self.send_response(agent.status)
                self.send_header("X-Consul-Index", "7" if stale else "8")
                self.send_header("X-Consul-LastContact", str(agent.last_contact_ms if stale else 0))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_long_polls_are_stale_reads_any_server_may_answer(agent):
    entries, index = Consul(agent.address).health_service("ner-worker", 5, 0.1)

    assert entries == [{"answered_by": "follower"}] and index == 7
    assert len(agent.queries) == 1
    assert "stale" in agent.queries[0] and agent.queries[0]["index"] == ["5"]


def test_an_answer_from_a_server_out_of_touch_with_the_leader_is_read_again_from_the_leader(agent):
    agent.last_contact_ms = 2500

    entries, index = Consul(agent.address, max_stale=2.0).health_service("ner-worker", 5, 0.1)

    assert entries == [{"answered_by": "leader"}] and index == 8
    assert len(agent.queries) == 2 and "stale" not in agent.queries[1]


def test_max_stale_zero_asks_the_leader_only(agent):
    Consul(agent.address, max_stale=0).health_service("ner-worker", 5, 0.1)

    assert len(agent.queries) == 1 and "stale" not in agent.queries[0]


def test_an_http_error_means_the_agent_answered(agent):
    agent.status = 500
    with pytest.raises(ConsulUnavailable) as failure:
        Consul(agent.address).health_service("ner-worker", 0, 0)
    assert failure.value.reached


def test_a_refused_connection_means_the_agent_was_not_reached():
    with pytest.raises(ConsulUnavailable) as failure:
        Consul("127.0.0.1:1").health_service("ner-worker", 0, 0)
    assert not failure.value.reached


class ListedAt:
    """A Consul whose answers carry the given indexes, one per query."""

    def __init__(self, *indexes: int) -> None:
        self.indexes = list(indexes)
        self.asked: list[int] = []

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        self.asked.append(index)
        return [], self.indexes.pop(0)


def test_the_next_query_waits_from_the_index_of_the_last_answer():
    consul = ListedAt(5, 9)
    view = View(consul, "ner-worker")
    view.fetch(0)
    assert view.fetch(1).moved
    assert consul.asked == [0, 5]


def test_an_index_that_goes_backwards_is_a_reset_and_the_next_query_reads_afresh():
    consul = ListedAt(50, 7, 8)
    view = View(consul, "ner-worker")
    view.fetch(0)
    assert view.fetch(1).reset
    view.fetch(1)
    assert consul.asked == [0, 50, 0]


def test_consul_index_resets_when_it_goes_backwards_and_never_blocks_on_zero():
    assert next_index(sent=50, received=7) == 0
    assert next_index(sent=0, received=0) == 1
    assert next_index(sent=5, received=9) == 9


@pytest.mark.parametrize("value, expected", [("0.2s:2s", (0.2, 2.0)), ("200ms:1s", (0.2, 1.0)), ("1:3", (1.0, 3.0))])
def test_wait_parses_like_consul_template(value, expected):
    assert parse_wait(value) == pytest.approx(expected)


def runner(tmp_path: Path) -> Runner:
    nginx = NginxControl(check_cmd=None, reload_cmd=None)
    template = Template.parse((NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text())
    return Runner(template, "ner-worker", Consul("127.0.0.1:1"), tmp_path / "upstream.conf", nginx, (0.2, 2.0))


def test_an_unreachable_agent_starts_the_recovery_grace(tmp_path):
    watching = runner(tmp_path)
    watching.note_outage(ConsulUnavailable("refused", reached=False), 0.5)
    assert watching.recovery.active()


def test_an_agent_that_answered_with_an_error_keeps_its_catalog_authoritative(tmp_path):
    watching = runner(tmp_path)
    watching.note_outage(ConsulUnavailable("500 no cluster leader", reached=True), 0.5)
    assert not watching.recovery.active()


def test_after_an_outage_the_next_query_reads_afresh(tmp_path):
    watching = runner(tmp_path)
    watching.view.index = 42
    watching.note_outage(ConsulUnavailable("500 no cluster leader", reached=True), 0.5)
    assert watching.view.index == 0
