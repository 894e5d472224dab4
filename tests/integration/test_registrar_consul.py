"""The registrar against a real Consul 1.8 dev agent, a real /health endpoint and a real gunicorn.

A tiny HTTP server answering /health stands in for the worker (the NER worker itself is tested
elsewhere); the gunicorn test runs the hooks in a real arbiter with a minimal WSGI app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from registrar.config import RegistrarConfig, load_config
from registrar.registration import Registrar
from tests.support.consul import ConsulAgent
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port
from tests.support.waiting import wait_for

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
CONSUL_BIN = REPO_ROOT / ".local" / "bin" / "consul"

pytestmark = pytest.mark.skipif(not CONSUL_BIN.exists(), reason="Consul binary not installed")


class HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status = 200 if self.path.split("?")[0] == "/health" else 404
        body = b'{"status": "ok"}' if status == 200 else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_port() -> Iterator[int]:
    """A /health endpoint answering 200, standing in for a worker."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def registrar_config(agent: ConsulAgent) -> RegistrarConfig:
    return load_config(
        {
            "CONSUL_HTTP_ADDR": agent.http_addr,
            "NER_MODEL_NAME": "raner-tiny",
            "NER_MODEL_VERSION": "0123456789ab",
            "NER_DRAIN_SECONDS": "0.3",
        }
    )


@pytest.fixture
def config(consul: ConsulAgent) -> RegistrarConfig:
    return registrar_config(consul)


@pytest.fixture
def registrar(config: RegistrarConfig) -> Iterator[Registrar]:
    registrar = Registrar(config)
    try:
        yield registrar
    finally:
        registrar.deregister()


def wait_passing(agent: ConsulAgent, service_id: str, timeout: float = 10.0) -> float:
    return wait_for(
        lambda: service_id in agent.passing_ids(), timeout, f"{service_id} passing", on_timeout=agent.process.log_tail
    )


def run_cli(agent: ConsulAgent, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONSUL_HTTP_ADDR": agent.http_addr}
    return subprocess.run(
        [PYTHON, "-m", "registrar", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )


class TestRegistration:
    def test_registered_instance_becomes_passing_with_its_id_address_port_and_meta(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        assert registrar.register(health_port)
        took = wait_passing(consul, registrar.instance_id)
        print(f"passing {took:.2f}s after registration")
        service = consul.agent_services()[registrar.instance_id]
        assert service["Service"] == "ner-worker"
        assert (service["Address"], service["Port"]) == ("127.0.0.1", health_port)
        assert service["Meta"] == {
            "model": "raner-tiny",
            "model_version": "0123456789ab",
            "hostname": registrar.config.hostname,
            "pid": str(os.getpid()),
        }
        assert sorted(service["Tags"]) == ["model=raner-tiny", "version=0123456789ab"]

    def test_health_check_probes_the_advertised_health_url(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        checks = [c for c in consul.get("/v1/agent/checks").json().values() if c["ServiceID"] == registrar.instance_id]
        assert len(checks) == 1
        assert (checks[0]["Type"], checks[0]["Status"]) == ("http", "passing")
        # Consul 1.8 leaves Definition empty here; the output names the URL it probed
        url = f"http://127.0.0.1:{health_port}/health?id={registrar.instance_id}"
        assert checks[0]["Output"].startswith(f"HTTP GET {url}: 200")

    def test_instance_whose_health_endpoint_is_down_never_passes(
        self, consul: ConsulAgent, registrar: Registrar
    ) -> None:
        registrar.register(free_port())

        def check_output() -> str:
            checks = consul.get("/v1/agent/checks").json()
            return checks[f"service:{registrar.instance_id}"]["Output"]

        wait_for(lambda: check_output() != "", 10, "the first check run")
        assert "connection refused" in check_output()
        assert registrar.instance_id not in consul.passing_ids()


class TestDrainAndDeregister:
    def test_drain_makes_the_instance_non_passing_before_it_returns(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        started = time.monotonic()
        dropped_after = registrar.drain()
        print(f"consul dropped it after {dropped_after:.3f}s; drain took {time.monotonic() - started:.2f}s")
        assert dropped_after is not None
        assert registrar.instance_id not in consul.passing_ids()
        assert registrar.instance_id in consul.agent_services()

    def test_deregister_removes_the_instance_from_the_agent_and_health(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        assert registrar.deregister() is True
        assert registrar.instance_id not in consul.agent_services()
        wait_for(
            lambda: not any(
                e["Service"]["ID"] == registrar.instance_id for e in consul.get("/v1/health/service/ner-worker").json()
            ),
            5,
            "the catalog without the instance",
        )


class TestResyncAfterAgentRestart:
    def test_instance_is_registered_again_within_15s_of_the_agent_coming_back(
        self, private_consul: ConsulAgent, health_port: int
    ) -> None:
        registrar = Registrar(replace(registrar_config(private_consul), resync_seconds=2.0))
        registrar.register(health_port)
        resync = registrar.start_resync()
        try:
            wait_passing(private_consul, registrar.instance_id)
            private_consul.restart()
            back = time.monotonic()
            assert registrar.instance_id not in private_consul.agent_services()  # the dev agent forgot it
            registered = wait_for(
                lambda: registrar.instance_id in private_consul.agent_services(),
                15,
                "re-registration",
                on_timeout=private_consul.process.log_tail,
            )
            wait_passing(private_consul, registrar.instance_id, timeout=15)
            passing = time.monotonic() - back
            print(
                f"re-registered {registered:.2f}s and passing {passing:.2f}s after the agent came back "
                f"(resync every {registrar.config.resync_seconds}s)"
            )
            assert registered < 15
            assert passing < 15
        finally:
            resync.stop()
            registrar.deregister()


class TestOperatorCli:
    def test_list_shows_id_endpoint_status_model_and_node(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        result = run_cli(consul, "list")
        assert result.returncode == 0, result.stderr
        header, *rows = result.stdout.splitlines()
        assert header.split() == ["ID", "ADDRESS", "STATUS", "MODEL", "IN-FLIGHT", "SERVED", "NODE"]
        row = next(r for r in rows if r.startswith(registrar.instance_id))
        assert row.split() == [
            registrar.instance_id,
            f"127.0.0.1:{health_port}",
            "passing",
            "raner-tiny@0123456789ab",
            "?",
            "?",
            "test-consul",
        ]  # no /metrics here

    def test_drain_puts_the_instance_into_maintenance_out_of_passing(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        result = run_cli(consul, "drain", registrar.instance_id, "--wait", "5")
        assert result.returncode == 0, result.stderr
        assert registrar.instance_id not in consul.passing_ids()
        listed = [json.loads(line) for line in run_cli(consul, "list", "--json").stdout.splitlines()]
        assert {i["id"]: i["status"] for i in listed}[registrar.instance_id] == "maintenance"

    def test_resume_brings_a_drained_instance_back_to_passing(
        self, consul: ConsulAgent, registrar: Registrar, health_port: int
    ) -> None:
        registrar.register(health_port)
        wait_passing(consul, registrar.instance_id)
        assert run_cli(consul, "drain", registrar.instance_id, "--wait", "5").returncode == 0
        assert run_cli(consul, "resume", registrar.instance_id).returncode == 0
        wait_passing(consul, registrar.instance_id, timeout=5)

    def test_deregister_removes_the_instance(self, consul: ConsulAgent, registrar: Registrar, health_port: int) -> None:
        registrar.register(health_port)
        result = run_cli(consul, "deregister", registrar.instance_id)
        assert result.returncode == 0, result.stderr
        assert registrar.instance_id not in consul.agent_services()

    def test_unknown_id_fails_with_a_message(self, consul: ConsulAgent) -> None:
        result = run_cli(consul, "drain", "ner-worker-nowhere-00000000")
        assert result.returncode == 1
        assert "no ner-worker instance" in result.stderr

    def test_register_prints_a_new_id_that_becomes_passing(self, consul: ConsulAgent, health_port: int) -> None:
        result = run_cli(consul, "register", "--port", str(health_port))
        assert result.returncode == 0, result.stderr
        service_id = result.stdout.strip()
        try:
            wait_passing(consul, service_id)
        finally:
            run_cli(consul, "deregister", service_id)


WSGI_APP = """
import os

def app(environ, start_response):
    body = b'{"status": "ok"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body))),
                              ("X-Worker-Id", os.environ.get("NER_INSTANCE_ID", ""))])
    return [body]
"""

GUNICORN_CONF = """
from registrar.hooks import on_starting, when_ready, on_exit

bind = "127.0.0.1:0"
workers = 1
graceful_timeout = 5
"""


class TestGunicornHooks:
    def test_sigterm_drains_while_still_serving_then_deregisters(self, consul: ConsulAgent, tmp_path: Path) -> None:
        (tmp_path / "tinyapp.py").write_text(WSGI_APP)
        (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONF)
        env = {
            **os.environ,
            "CONSUL_HTTP_ADDR": consul.http_addr,
            "NER_DRAIN_SECONDS": "2",
            "NER_MODEL_NAME": "tiny",
            "PYTHONPATH": str(REPO_ROOT),
        }
        env.pop("NER_INSTANCE_ID", None)
        gunicorn = ManagedProcess(
            "gunicorn",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "-c",
                str(tmp_path / "gunicorn_conf.py"),
                "--pythonpath",
                str(tmp_path),
                "tinyapp:app",
            ],
            log_path=tmp_path / "gunicorn.log",
            env=env,
        ).start()
        try:

            def own_service() -> dict | None:
                for service in consul.agent_services().values():
                    if service["Meta"].get("pid") == str(gunicorn.pid):
                        return service
                return None

            wait_for(lambda: own_service() is not None, 15, "gunicorn registered", on_timeout=gunicorn.log_tail)
            service = own_service()
            service_id, port = service["ID"], service["Port"]
            assert port > 0  # bound to port 0: the real port was registered
            wait_passing(consul, service_id)
            response = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert response.headers["X-Worker-Id"] == service_id

            gunicorn.signal(signal.SIGTERM)  # the master only, as a container runtime does
            sent = time.monotonic()
            wait_for(lambda: service_id not in consul.passing_ids(), 5, "marked out", on_timeout=gunicorn.log_tail)
            marked_out = time.monotonic() - sent
            late = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert late.status_code == 200, "a draining worker still answers late requests"
            assert gunicorn.alive()
            gunicorn.proc.wait(timeout=20)
            exited = time.monotonic() - sent
            print(f"not passing {marked_out:.2f}s after SIGTERM; served a late request; exited after {exited:.2f}s")
            assert service_id not in consul.agent_services()
            assert gunicorn.proc.returncode == 0, gunicorn.log_tail()
        finally:
            gunicorn.stop()
