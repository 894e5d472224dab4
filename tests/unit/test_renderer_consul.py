"""How the renderer reads Consul: stale-tolerant long polls, and which failures mean a restart."""
from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

NGINX_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx-template"
sys.path.insert(0, str(NGINX_TEMPLATE_DIR))

import render_upstream as ru  # noqa: E402


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
    entries, index = ru.Consul(agent.address).health_service("ner-worker", 5, 0.1)

    assert entries == [{"answered_by": "follower"}] and index == 7
    assert len(agent.queries) == 1
    assert "stale" in agent.queries[0] and agent.queries[0]["index"] == ["5"]


def test_an_answer_from_a_server_out_of_touch_with_the_leader_is_read_again_from_the_leader(agent):
    agent.last_contact_ms = 2500

    entries, index = ru.Consul(agent.address, max_stale=2.0).health_service("ner-worker", 5, 0.1)

    assert entries == [{"answered_by": "leader"}] and index == 8
    assert len(agent.queries) == 2 and "stale" not in agent.queries[1]


def test_max_stale_zero_asks_the_leader_only(agent):
    ru.Consul(agent.address, max_stale=0).health_service("ner-worker", 5, 0.1)

    assert len(agent.queries) == 1 and "stale" not in agent.queries[0]


def test_an_http_error_means_the_agent_answered(agent):
    agent.status = 500
    with pytest.raises(ru.ConsulUnavailable) as failure:
        ru.Consul(agent.address).health_service("ner-worker", 0, 0)
    assert failure.value.reached


def test_a_refused_connection_means_the_agent_was_not_reached():
    with pytest.raises(ru.ConsulUnavailable) as failure:
        ru.Consul("127.0.0.1:1").health_service("ner-worker", 0, 0)
    assert not failure.value.reached


def renderer(tmp_path: Path) -> ru.Renderer:
    nginx = ru.NginxControl(check_cmd=None, reload_cmd=None)
    template = ru.Template.parse((NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text())
    return ru.Renderer(template, "ner-worker", ru.Consul("127.0.0.1:1"), tmp_path / "upstream.conf",
                       nginx, (0.2, 2.0))


def test_an_unreachable_agent_starts_the_recovery_grace(tmp_path):
    watching = renderer(tmp_path)
    watching.note_outage(ru.ConsulUnavailable("refused", reached=False), 0.5)
    assert watching.recovering()


def test_an_agent_that_answered_with_an_error_keeps_its_catalog_authoritative(tmp_path):
    watching = renderer(tmp_path)
    watching.note_outage(ru.ConsulUnavailable("500 no cluster leader", reached=True), 0.5)
    assert not watching.recovering()
    assert watching.index == 0


def instance(service_id: str, port: int, status: str = "passing") -> ru.Instance:
    return ru.Instance(node="n1", id=service_id, name="ner-worker", address="127.0.0.1", port=port, status=status)


def test_during_recovery_an_instance_consul_does_not_list_yet_stays_in_the_upstream(tmp_path):
    watching = renderer(tmp_path)
    watching.applied = [instance("a", 8101), instance("b", 8103)]
    watching.start_recovery("consul lost its state")
    kept = watching.keep_during_recovery([instance("b", 8103)])
    assert {i.id for i in kept} == {"a", "b"}


def test_during_recovery_an_address_registered_by_a_new_instance_drops_the_old_one(tmp_path):
    watching = renderer(tmp_path)
    watching.applied = [instance("old", 8101), instance("b", 8103)]
    watching.start_recovery("consul lost its state")
    # The worker restarted on the same port: a new ID, critical until its model has loaded.
    kept = watching.keep_during_recovery([instance("new", 8101, "critical"), instance("b", 8103)])
    assert {i.id: i.status for i in kept} == {"new": "critical", "b": "passing"}
