"""The gateway end to end: real Consul, real nginx, the project renderer, tiny real HTTP backends.

Each test watches its own Consul service name (the renderer's --service), so
tests share one Consul agent without seeing each other's backends.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.support.consul import ConsulAgent
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, wait_until
from upstream_renderer.dependency import aggregate_status
from upstream_renderer.nginx import fill_nginx_conf

NGINX_TEMPLATE_DIR = REPO_ROOT / "nginx-template"
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")

log = logging.getLogger(__name__)

pytestmark = pytest.mark.skipif(not Path(NGINX_BIN).exists(), reason="nginx is not installed")


# --------------------------------------------------------------------------- backends


@dataclass
class Backend:
    """A worker stand-in: answers JSON with X-Worker-Id; its /health status is switchable."""

    name: str
    mode: str = "ok"  # ok: 200 JSON; drop: read the request, close without answering; busy: 429 JSON;
    # hold: 200 JSON once `release` is set
    health_status: int = 200
    port: int = 0
    hits: int = 0
    seen_request_ids: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def start(self) -> "Backend":
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream keepalive expects

            def log_message(self, *args) -> None:  # quiet: the test output is the log
                pass

            def do_GET(self) -> None:
                if self.path == "/health":
                    status = backend.health_status
                    self._send(status, {"status": "ok" if status == 200 else "not ok"})
                else:
                    self._serve()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._serve()

            def _serve(self) -> None:
                backend.hits += 1
                request_id = self.headers.get("X-Request-Id", "")
                backend.seen_request_ids.append(request_id)
                if backend.mode == "hold":
                    backend.release.wait(10)
                if backend.mode == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                status = 429 if backend.mode == "busy" else 200
                body = (
                    {"title": "429 Too Many Requests", "description": "worker overloaded"}
                    if status == 429
                    else {"backend": backend.name, "request_id": request_id}
                )
                self._send(status, body, {"X-Request-Id": request_id})

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Worker-Id", backend.name)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def register(consul: ConsulAgent, service: str, backend: Backend) -> None:
    """Register like a worker does: own ID, HTTP check on /health every second."""
    definition = {
        "ID": backend.name,
        "Name": service,
        "Address": "127.0.0.1",
        "Port": backend.port,
        "Check": {
            "HTTP": f"http://127.0.0.1:{backend.port}/health",
            "Interval": "1s",
            "Timeout": "1s",
            "DeregisterCriticalServiceAfter": "1m",
        },
    }
    requests.put(consul.url + "/v1/agent/service/register", json=definition, timeout=5).raise_for_status()


def deregister(consul: ConsulAgent, service_id: str) -> None:
    try:
        requests.put(consul.url + f"/v1/agent/service/deregister/{service_id}", timeout=5)
    except requests.RequestException:
        pass  # the agent may already be gone


# --------------------------------------------------------------------------- gateway


@dataclass
class Gateway:
    """nginx filled from nginx.conf.tmpl plus the renderer keeping its upstream current."""

    service: str
    prefix: Path
    port: int
    nginx: ManagedProcess
    renderer: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upstream_path(self) -> Path:
        return self.prefix / "upstream.conf"

    def upstream_text(self) -> str:
        return self.upstream_path.read_text()

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.renderer.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return lines

    def reload_count(self) -> int:
        return sum(1 for line in self.log_lines() if line.get("reloaded") is True)

    def nginx_test(self) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX_BIN, "-t", *nginx_args(self.prefix)], capture_output=True, text=True)

    def diagnostics(self) -> str:
        return "\n".join(
            [
                self.renderer.log_tail(),
                self.nginx.log_tail(),
                f"--- upstream ---\n{self.upstream_text() if self.upstream_path.exists() else ''}",
            ]
        )

    def routes_to(self, backend: Backend) -> bool:
        return (
            requests.post(self.url + "/v1/ner", json={"text": "x"}, timeout=2).headers.get("X-Worker-Id")
            == backend.name
        )


def nginx_args(prefix: Path) -> list[str]:
    return ["-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]


RECOVERY_GRACE = 3.0  # shorter than the 15 s default, so the tests can see it end
RENDERER_ENV = {**os.environ, "PYTHONPATH": str(NGINX_TEMPLATE_DIR)}  # where upstream_renderer is


def renderer_argv(consul: ConsulAgent, prefix: Path, service: str, template: Path) -> list[str]:
    return [
        PYTHON,
        "-m",
        "upstream_renderer",
        "--consul",
        consul.http_addr,
        "--template",
        str(template),
        "--out",
        str(prefix / "upstream.conf"),
        "--service",
        service,
        "--nginx-bin",
        NGINX_BIN,
        "--log-level",
        "DEBUG",
        "--nginx-prefix",
        str(prefix),
        "--nginx-conf",
        str(prefix / "nginx.conf"),
        "--recovery-grace",
        str(RECOVERY_GRACE),
    ]


def start_gateway(consul: ConsulAgent, prefix: Path, template: Path, extra_args: tuple[str, ...] = ()) -> Gateway:
    """Render once, start nginx, then start the renderer loop: the local-mode start order."""
    service = f"ner-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    (prefix / "nginx.conf").write_text(
        fill_nginx_conf(
            (NGINX_TEMPLATE_DIR / "nginx.conf.tmpl").read_text(),
            prefix=str(prefix),
            upstream_conf=str(prefix / "upstream.conf"),
            listen=f"127.0.0.1:{port}",
        )
    )
    argv = renderer_argv(consul, prefix, service, template) + list(extra_args)
    subprocess.run(argv + ["--once", "--no-reload"], check=True, capture_output=True, timeout=30, env=RENDERER_ENV)
    nginx = ManagedProcess("nginx", [NGINX_BIN, *nginx_args(prefix)], prefix / "nginx.out").start()
    renderer = ManagedProcess("renderer", argv, prefix / "renderer.log", env=RENDERER_ENV).start()
    gateway = Gateway(service, prefix, port, nginx, renderer)
    wait_until(
        lambda: requests.get(gateway.url + "/gateway/health", timeout=1).ok,
        10,
        describe="nginx up",
        on_timeout=gateway.diagnostics,
    )
    wait_until(lambda: bool(gateway.log_lines()), 10, describe="renderer up", on_timeout=gateway.diagnostics)
    return gateway


@pytest.fixture
def world_readable_dir() -> Iterator[Callable[[], Path]]:
    """Directories nginx's unprivileged workers can enter (pytest's tmp_path is 0700 root)."""
    made: list[Path] = []

    def make() -> Path:
        path = Path(tempfile.mkdtemp(prefix="ner-gateway-"))
        path.chmod(0o755)
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def backends(consul) -> Iterator[Callable[..., Backend]]:
    """Start backends on demand; stop and deregister them afterwards."""
    started: list[Backend] = []

    def make(mode: str = "ok", health_status: int = 200) -> Backend:
        backend = Backend(name=f"be-{uuid.uuid4().hex[:6]}", mode=mode, health_status=health_status).start()
        started.append(backend)
        return backend

    yield make
    for backend in started:
        deregister(consul, backend.name)
        backend.stop()


@pytest.fixture
def gateway_factory(consul, world_readable_dir) -> Iterator[Callable[..., Gateway]]:
    gateways: list[Gateway] = []

    def make(template: Path = NGINX_TEMPLATE_DIR / "upstream.ctmpl", extra_args: tuple[str, ...] = ()) -> Gateway:
        gateway = start_gateway(consul, world_readable_dir(), template, extra_args)
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        gateway.renderer.stop()
        gateway.nginx.stop()


@pytest.fixture
def gateway(gateway_factory) -> Gateway:
    return gateway_factory()


def nginx_worker_titles(master_pid: int) -> list[str]:
    """Process titles of the nginx master's children ("nginx: worker process" ...)."""
    titles = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            if ppid == master_pid:
                titles.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return titles


def wait_nginx_settled(gateway: Gateway) -> None:
    """After a reload, old nginx workers still accept for ~100 ms: wait until only new ones are left."""

    def settled() -> bool:
        titles = nginx_worker_titles(gateway.nginx.pid)
        return len(titles) == 2 and not any("shutting down" in t for t in titles)

    wait_until(settled, 5, describe="nginx reload finished", on_timeout=gateway.diagnostics)


def add_backend(consul: ConsulAgent, gateway: Gateway, backend: Backend) -> float:
    """Register and wait until the gateway routes to it; the seconds that took."""
    register(consul, gateway.service, backend)
    seconds = wait_until(
        lambda: gateway.routes_to(backend), 5, describe=f"{backend.name} routed", on_timeout=gateway.diagnostics
    )
    wait_nginx_settled(gateway)
    return seconds


# --------------------------------------------------------------------------- tests


def test_renderer_announces_it_is_the_project_renderer(gateway):
    assert gateway.log_lines()[0]["event"].startswith("renderer: project renderer")


def test_gateway_health_is_answered_by_nginx_without_any_worker(gateway):
    response = requests.get(gateway.url + "/gateway/health", timeout=2)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_new_passing_backend_receives_traffic_within_5_seconds(consul, gateway, backends, record_property):
    seconds = add_backend(consul, gateway, backends())
    reload_ms = [line["took_ms"] for line in gateway.log_lines() if line.get("reloaded")]
    log.info("registration -> routed: %.2f s; render+check+reload: %s ms", seconds, reload_ms)
    record_property("registration_to_routed_s", round(seconds, 3))
    record_property("render_check_reload_ms", reload_ms)
    assert seconds < 5


def test_backend_whose_check_fails_is_removed(consul, gateway, backends):
    keep, fail = backends(), backends()
    add_backend(consul, gateway, keep)
    add_backend(consul, gateway, fail)
    fail.health_status = 500

    def only_keep_serves() -> bool:
        return all(gateway.routes_to(keep) for _ in range(10))

    seconds = wait_until(only_keep_serves, 6, describe="failed backend out of rotation", on_timeout=gateway.diagnostics)
    log.info("check failing -> out of rotation: %.2f s", seconds)
    assert f":{fail.port} " not in gateway.upstream_text()


def test_zero_backends_get_a_fast_json_503_and_the_config_passes_nginx_t(gateway, record_property):
    timings, responses = [], []
    for _ in range(20):
        started = time.perf_counter()
        responses.append(requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=5))
        timings.append(time.perf_counter() - started)
    log.info("zero-worker 503: median %.1f ms, max %.1f ms", statistics.median(timings) * 1000, max(timings) * 1000)
    record_property("zero_worker_503_median_ms", round(statistics.median(timings) * 1000, 2))
    record_property("zero_worker_503_max_ms", round(max(timings) * 1000, 2))
    assert {r.status_code for r in responses} == {503}
    assert set(responses[0].json()) == {"title", "description"}
    assert "no healthy worker" in responses[0].json()["description"]
    assert max(timings) < 0.5
    assert gateway.nginx_test().returncode == 0


def test_candidate_failing_nginx_t_is_refused_and_last_good_kept(consul, gateway_factory, backends, tmp_path):
    broken = tmp_path / "broken.ctmpl"
    broken.write_text((NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text().replace("max_conns=128", "max_conns=oops"))
    gateway = gateway_factory(broken)
    good = gateway.upstream_text()
    register(consul, gateway.service, backends())
    wait_until(
        lambda: any(line.get("config_ok") is False for line in gateway.log_lines()),
        5,
        describe="candidate refused",
        on_timeout=gateway.diagnostics,
    )
    assert gateway.upstream_text() == good
    assert gateway.nginx_test().returncode == 0
    assert requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=2).status_code == 503


def test_a_request_beyond_every_workers_max_conns_gets_a_json_429_at_once_not_a_503(
    consul, gateway_factory, backends, tmp_path
):
    one_each = tmp_path / "one-connection.ctmpl"
    one_each.write_text((NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text().replace("max_conns=128", "max_conns=1"))
    gateway = gateway_factory(one_each)
    backend = backends()
    add_backend(consul, gateway, backend)
    backend.mode = "hold"
    hits_before = backend.hits
    held: list[int] = []
    first = threading.Thread(
        target=lambda: held.append(requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=15).status_code)
    )
    first.start()
    try:
        wait_until(lambda: backend.hits > hits_before, 5, describe="the held request at the backend")
        started = time.monotonic()
        refused = requests.post(gateway.url + "/v1/ner", json={"text": "y"}, timeout=5)
        took = time.monotonic() - started
    finally:
        backend.release.set()
        first.join(15)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["title"] == "429 Too Many Requests" and "connection limit" in refused.json()["description"]
    assert took < 1.0
    assert held == [200]


def test_no_reload_when_consul_changes_but_the_upstream_does_not(consul, gateway, backends):
    backend = backends()
    add_backend(consul, gateway, backend)
    reloads = gateway.reload_count()
    # A second, passing check on the instance: Consul's index moves, the rendered upstream does not.
    check = {
        "ID": f"extra-{backend.name}",
        "Name": "extra",
        "ServiceID": backend.name,
        "TTL": "10m",
        "Status": "passing",
    }
    requests.put(consul.url + "/v1/agent/check/register", json=check, timeout=5).raise_for_status()
    requests.put(consul.url + f"/v1/agent/check/deregister/{check['ID']}", timeout=5).raise_for_status()
    index_after = int(consul.get(f"/v1/health/service/{gateway.service}").headers["X-Consul-Index"])

    def renderer_saw_it() -> bool:
        return any(
            line.get("event") == "consul changed, upstream did not" and line["index"] >= index_after
            for line in gateway.log_lines()
        )

    wait_until(renderer_saw_it, 5, describe="renderer saw the new index", on_timeout=gateway.diagnostics)
    assert gateway.reload_count() == reloads


def test_request_id_from_the_client_passes_to_the_worker_and_back(consul, gateway, backends):
    backend = backends()
    add_backend(consul, gateway, backend)
    response = requests.post(gateway.url + "/v1/ner", json={"text": "x"}, headers={"X-Request-Id": "req-42"}, timeout=2)
    assert response.headers["X-Request-Id"] == "req-42"
    assert response.json()["request_id"] == "req-42"


def test_request_id_is_generated_when_the_client_sends_none(consul, gateway, backends):
    backend = backends()
    add_backend(consul, gateway, backend)
    response = requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=2)
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert response.json()["request_id"] == request_id


def test_post_that_fails_on_one_backend_is_retried_on_another(consul, gateway, backends):
    dropper, good = backends(mode="drop"), backends()
    add_backend(consul, gateway, good)
    register(consul, gateway.service, dropper)
    answers: list[tuple[int, str]] = []

    def dropper_was_tried() -> bool:
        response = requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=5)
        answers.append((response.status_code, response.headers.get("X-Worker-Id", "")))
        return dropper.hits >= 1

    wait_until(
        dropper_was_tried,
        8,
        interval=0.02,
        describe="a POST sent to the dropping backend",
        on_timeout=gateway.diagnostics,
    )
    # The POST reached the dropping backend and was lost there; the client still got the good one's answer.
    assert set(answers) == {(200, good.name)}


def test_overloaded_backend_stays_in_upstream_with_low_weight(consul, gateway, backends):
    busy = backends(health_status=429)
    add_backend(consul, gateway, busy)
    line = next(text for text in gateway.upstream_text().splitlines() if f":{busy.port} " in text)
    assert "weight=1 " in line and "warning" in line


def consul_status(consul: ConsulAgent, service: str, backend: Backend) -> str:
    """The aggregated status Consul gives the backend's instance ("" when it is not listed)."""
    for entry in consul.get(f"/v1/health/service/{service}").json():
        if entry["Service"]["ID"] == backend.name:
            return aggregate_status(entry["Checks"])
    return ""


def weight_of(gateway: Gateway, backend: Backend) -> str | None:
    line = next((text for text in gateway.upstream_text().splitlines() if f":{backend.port} " in text), None)
    return None if line is None else line.split("weight=")[1].split()[0]


def flap_once(consul: ConsulAgent, gateway: Gateway, backend: Backend) -> float:
    """Warning (reaches nginx: no weight-only reload yet), then passing again in Consul; when the
    warning weight was seen in the upstream."""
    backend.health_status = 429
    wait_until(
        lambda: weight_of(gateway, backend) == "1", 5, describe="warning weight applied", on_timeout=gateway.diagnostics
    )
    applied_at = time.monotonic()
    backend.health_status = 200
    wait_until(
        lambda: consul_status(consul, gateway.service, backend) == "passing",
        5,
        describe="passing again in Consul",
        on_timeout=gateway.diagnostics,
    )
    return applied_at


def held_lines(gateway: Gateway) -> list[dict]:
    return [line for line in gateway.log_lines() if line.get("decision") == "held"]


def test_a_weight_change_within_the_hold_down_waits_for_it_and_is_then_applied(consul, gateway_factory, backends):
    hold_down = 4.0
    gateway = gateway_factory(extra_args=("--hold-down", f"{hold_down}s"))
    backend = backends()
    add_backend(consul, gateway, backend)
    warned_at = flap_once(consul, gateway, backend)
    wait_until(lambda: bool(held_lines(gateway)), 3, describe="passing again held down", on_timeout=gateway.diagnostics)
    assert weight_of(gateway, backend) == "1"
    wait_until(
        lambda: weight_of(gateway, backend) == "10",
        hold_down + 3,
        describe="held change applied",
        on_timeout=gateway.diagnostics,
    )
    assert time.monotonic() - warned_at >= hold_down - 0.5


def test_a_join_during_a_hold_down_is_applied_at_once_with_the_current_weights(consul, gateway_factory, backends):
    gateway = gateway_factory(extra_args=("--hold-down", "60s"))
    first, second = backends(), backends()
    add_backend(consul, gateway, first)
    flap_once(consul, gateway, first)
    wait_until(lambda: bool(held_lines(gateway)), 3, describe="passing again held down", on_timeout=gateway.diagnostics)
    seconds = add_backend(consul, gateway, second)
    assert seconds < 5
    assert weight_of(gateway, first) == "10" and weight_of(gateway, second) == "10"


def test_worker_error_response_passes_through_unchanged(consul, gateway, backends):
    busy = backends(mode="busy")
    add_backend(consul, gateway, busy)
    hits = busy.hits
    response = requests.post(gateway.url + "/v1/ner", json={"text": "x"}, timeout=2)
    assert response.status_code == 429
    assert response.json() == {"title": "429 Too Many Requests", "description": "worker overloaded"}
    assert response.headers["X-Worker-Id"] == busy.name
    assert busy.hits == hits + 1  # 429 is not retried


def test_oversized_body_gets_a_json_413_from_the_gateway(gateway):
    response = requests.post(
        gateway.url + "/v1/ner",
        data=b"x" * (2 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 413
    assert set(response.json()) == {"title", "description"}


@pytest.fixture
def private_gateway(private_consul, world_readable_dir) -> Iterator[Gateway]:
    gateway = start_gateway(private_consul, world_readable_dir(), NGINX_TEMPLATE_DIR / "upstream.ctmpl")
    yield gateway
    gateway.renderer.stop()
    gateway.nginx.stop()


def test_consul_outage_keeps_the_last_good_upstream(private_consul, private_gateway, backends):
    gateway, backend = private_gateway, backends()
    add_backend(private_consul, gateway, backend)
    before = gateway.upstream_text()
    private_consul.process.stop()
    wait_until(
        lambda: any("consul unavailable" in line.get("event", "") for line in gateway.log_lines()),
        5,
        describe="outage noticed",
        on_timeout=gateway.diagnostics,
    )
    assert gateway.upstream_text() == before
    assert gateway.routes_to(backend)


def test_after_consul_lost_its_state_instances_are_kept_for_the_grace_then_dropped(
    private_consul, private_gateway, backends
):
    gateway, backend = private_gateway, backends()
    add_backend(private_consul, gateway, backend)
    restarted = time.monotonic()
    private_consul.restart()  # a dev agent comes back empty, with a lower index
    assert gateway.routes_to(backend)
    wait_until(
        lambda: f":{backend.port} " not in gateway.upstream_text(),
        RECOVERY_GRACE + 10,
        describe="upstream follows the new agent",
        on_timeout=gateway.diagnostics,
    )
    assert time.monotonic() - restarted >= RECOVERY_GRACE - 0.5


def test_an_instance_that_registers_again_within_the_grace_never_leaves_the_upstream(
    private_consul, private_gateway, backends
):
    gateway, backend = private_gateway, backends()
    add_backend(private_consul, gateway, backend)
    private_consul.restart()
    add_backend(private_consul, gateway, backend)  # what a worker's registrar does next
    deadline = time.monotonic() + RECOVERY_GRACE + 2
    while time.monotonic() < deadline:
        assert f":{backend.port} " in gateway.upstream_text()
        time.sleep(0.1)
    assert gateway.routes_to(backend)


def test_sigterm_stops_the_renderer_promptly(gateway):
    started = time.monotonic()
    gateway.renderer.signal(signal.SIGTERM)
    gateway.renderer.proc.wait(timeout=5)
    assert gateway.renderer.proc.returncode == 0
    assert time.monotonic() - started < 2
