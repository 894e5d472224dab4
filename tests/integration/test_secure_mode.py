"""Secured mode end to end: a real Consul 1.8.7 server with ACLs (default deny) and gossip
encryption, started by LocalCluster in secure mode, real nginx, real gunicorn workers.

One secure cluster for the module (1 worker, scaled to 2 and back): CPU stays modest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.localcluster import REPO_ROOT, LocalCluster, wait_for
from scripts.localmode.gateway import write_nginx_conf
from scripts.secured.acl_setup import ensure_acls
from scripts.secured.consul_tls import ensure_consul_tls
from scripts.tls.store import describe
from tests.integration.conftest import cluster_config, world_readable_dir
from tests.integration.loopback_capture import LoopbackCapture
from tests.support.ratelimit import assert_gateway_429, requests_until_limited

TEXT = {"text": "张三在北京的清华大学工作。"}
RATE, BURST = "5r/s", 10


@pytest.fixture(scope="module")
def secure() -> Iterator[tuple[LocalCluster, list[str]]]:
    """A secure-mode cluster with one worker and a tight gateway rate limit; its messages."""
    run_dir = world_readable_dir("ner-secure-")
    said: list[str] = []
    config = replace(cluster_config(run_dir), secure=True, gateway_rate=RATE, gateway_burst=str(BURST))
    local = LocalCluster(config, say=said.append)
    started = time.monotonic()
    try:
        local.up(1)
        said.append(f"[test] secure up with 1 worker took {time.monotonic() - started:.1f}s")
        yield local, said
    finally:
        local.down()
        shutil.rmtree(run_dir, ignore_errors=True)


def consul(
    cluster: LocalCluster, method: str, path: str, token: str | None = None, body: object = None
) -> requests.Response:
    headers = {"X-Consul-Token": token} if token else {}
    return requests.request(
        method,
        cluster.consul_url + path,
        headers=headers,
        timeout=5,
        data=None if body is None else json.dumps(body),
        verify=cluster.mode.consul_verify(),
    )


def worker_ids(cluster: LocalCluster) -> set[str]:
    """Service IDs the agent holds, as the operator sees them."""
    return set(consul(cluster, "GET", "/v1/agent/services", cluster.token("operator")).json())


def wait_not_rate_limited(cluster: LocalCluster) -> None:
    """The test client's bucket refills (BURST at RATE takes 2 s) before other tests use the gateway."""
    url = f"{cluster.config.gateway_url}/v1/ner"
    wait_for(
        lambda: requests.post(url, json=TEXT, timeout=5).status_code != 429, 10, "rate limit to clear", interval=0.5
    )
    time.sleep(BURST / 5)


def test_secure_mode_runs_a_persistent_server_with_acls_and_gossip_encryption(secure, record_figure):
    cluster, said = secure
    assert cluster.secure
    argv = Path(f"/proc/{cluster.live()['consul'].pid}/cmdline").read_bytes().split(b"\0")
    assert b"-server" in argv and b"-dev" not in argv
    assert any(a.endswith(b"consul/secure.hcl") for a in argv)
    config = consul(cluster, "GET", "/v1/agent/self", cluster.token("operator")).json()
    assert config["Config"]["Server"] is True
    assert config["DebugConfig"]["ACLDefaultPolicy"] == "deny"
    assert config["DebugConfig"]["ACLsEnabled"] is True
    assert config["DebugConfig"]["ClientAddrs"] == ["127.0.0.1"]  # HTTP API and UI on loopback only
    assert consul(cluster, "GET", "/v1/agent/self").status_code == 403
    assert "Gossip: true" in Path(cluster.live()["consul"].log).read_text()
    up = next(m for m in said if m.startswith("consul: up in"))
    record_figure("secure.consul_up_with_acl_bootstrap_s", float(up.split()[3].rstrip("s")))


def test_consul_speaks_https_only_with_a_certificate_from_the_clusters_ca_and_the_ui_there(secure):
    cluster, _ = secure
    port, tls = cluster.config.consul_http_port, cluster.mode.consul_tls()
    # Plain HTTP gets no API answer: the port speaks TLS only (Go's server answers 400 and closes).
    plain = requests.get(f"http://127.0.0.1:{port}/v1/status/leader", timeout=5)
    assert plain.status_code == 400 and "HTTP request to an HTTPS server" in plain.text
    with pytest.raises(requests.exceptions.SSLError):  # not trusted without the cluster's CA
        requests.get(f"https://127.0.0.1:{port}/v1/status/leader", timeout=5)
    assert cluster.consul_url == f"https://127.0.0.1:{port}"
    assert consul(cluster, "GET", "/v1/status/leader").json()
    ui = consul(cluster, "GET", "/ui/")
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    debug = consul(cluster, "GET", "/v1/agent/self", cluster.token("operator")).json()["DebugConfig"]
    assert (debug["HTTPPort"], debug["HTTPSPort"]) == (-1, port)
    assert (debug["VerifyIncomingHTTPS"], debug["VerifyIncomingRPC"], debug["VerifyServerHostname"]) == (
        False,
        True,
        True,
    )
    names = describe(tls.cert_file)
    assert {"server.dc1.consul", "localhost"} <= set(names["dns_names"]) and "127.0.0.1" in names["ips"]
    assert stat.S_IMODE(tls.key_file.stat().st_mode) == 0o600


def test_the_operator_clis_reach_consul_over_https_with_the_ca_and_fail_without_it(secure):
    cluster, _ = secure
    operator = cluster.secrets().file("operator.token")
    env = {
        "PATH": os.environ["PATH"],
        "CONSUL_HTTP_ADDR": cluster.consul_url,
        "CONSUL_CACERT": str(cluster.mode.consul_tls().ca_file),
        "CONSUL_HTTP_TOKEN_FILE": str(operator),
    }
    members = run_cli([str(cluster.config.consul_bin), "members"], env)
    assert members.returncode == 0 and "alive" in members.stdout, members.stderr
    without_ca = run_cli(
        [str(cluster.config.consul_bin), "members"], {k: v for k, v in env.items() if k != "CONSUL_CACERT"}
    )
    assert without_ca.returncode != 0 and "certificate signed by unknown authority" in without_ca.stderr
    registrar_env = {**env, "CONSUL_HTTP_TOKEN": operator.read_text().strip(), "PYTHONPATH": str(REPO_ROOT)}
    listed = run_cli([str(cluster.config.python), "-m", "registrar", "list", "--json"], registrar_env)
    assert listed.returncode == 0 and "ner-worker-" in listed.stdout, listed.stderr
    plain = run_cli(
        [str(cluster.config.python), "-m", "registrar", "list"],
        {**registrar_env, "CONSUL_HTTP_ADDR": f"http://127.0.0.1:{cluster.config.consul_http_port}"},
    )
    assert plain.returncode != 0  # Consul answers plain HTTP with 400 only


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """An operator's command with exactly this environment (no token or CA of the test's own)."""
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_no_token_crosses_the_loopback_in_the_clear_while_workers_come_and_go(secure, record_figure):
    """Every connection to Consul's port opens with a TLS handshake; a plain canary request in the
    same capture is seen in the clear, so the capture does see plaintext when there is some."""
    cluster, _ = secure
    port = cluster.config.consul_http_port
    secrets = {role: cluster.token(role) for role in ("worker", "gateway", "prometheus", "operator")}
    canary = str(uuid.uuid4())
    with LoopbackCapture(port, max_seconds=150) as capture:
        cluster.scale(2)  # a worker registers; the renderer's and discovery's long polls return and go again
        canary_port = plain_request_with_token(port, canary)
        status = run_status(cluster)
        cluster.scale(1)  # it drains: maintenance, health reads, deregister, all with its token
    assert status.returncode == 0 and "ner-worker-" in status.stdout, status.stderr
    streams = capture.client_streams()
    record_figure("secure.capture_connections_to_consul", len(streams))
    assert canary.encode() in streams.pop(canary_port)  # the plaintext control
    assert len(streams) >= 4, sorted(streams)  # workers, renderer, discovery, Prometheus, status
    # Connections opened during the capture start with a handshake; older ones go on with records.
    not_tls = {client: data[:16] for client, data in streams.items() if not tls_record(data)}
    assert not_tls == {}
    assert sum(data.startswith(b"\x16\x03") for data in streams.values()) >= 2  # the new worker, status
    seen = b"".join(capture.payloads(excluding=canary_port))
    assert [role for role, secret in secrets.items() if secret.encode() in seen] == []
    assert b"X-Consul-Token" not in seen and b"HTTP/1.1" not in seen


def tls_record(data: bytes) -> bool:
    """Whether data begins with a TLS record header: a content type (20-23) and protocol version 3.x."""
    return len(data) >= 3 and 20 <= data[0] <= 23 and data[1] == 3


def plain_request_with_token(port: int, token: str) -> int:
    """A plain HTTP request carrying a token, as a misconfigured client would send it; its local port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n\r\n".encode())
        conn.recv(4096)
        return conn.getsockname()[1]


def run_status(cluster: LocalCluster) -> subprocess.CompletedProcess:
    """`python -m scripts.cluster status` for this run directory, as an operator runs it."""
    return run_cli([str(cluster.config.python), "-m", "scripts.cluster", "status"], status_env(cluster))


def status_env(cluster: LocalCluster) -> dict[str, str]:
    """`python -m scripts.cluster status` for this run directory, with no token of the caller's own."""
    env = {
        **os.environ,
        "NER_RUN_DIR": str(cluster.config.run_dir),
        "NER_CONSUL_HTTP_PORT": str(cluster.config.consul_http_port),
        "NER_GATEWAY_LISTEN": f"127.0.0.1:{cluster.config.gateway_port}",
    }
    env.pop("CONSUL_HTTP_TOKEN", None)
    return env


def served_fingerprint(port: int, ca_file: Path) -> str:
    """SHA-256 of the certificate Consul presents to a new connection (verified against the CA)."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), ca_certs=str(ca_file), timeout=5)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_a_rotated_consul_certificate_is_served_after_a_reload_and_clients_keep_working(secure, record_figure):
    """docs/SECURITY.md's rotation: a new certificate from the same CA, then `consul reload`."""
    cluster, _ = secure
    port, tls = cluster.config.consul_http_port, cluster.mode.consul_tls()
    before = served_fingerprint(port, tls.ca_file)
    rotate = run_cli(
        [str(cluster.config.python), "-m", "scripts.tls", "rotate", "--dir", str(tls.cert_file.parent), "--name"]
        + ["consul", "--names", "server.dc1.consul,localhost,127.0.0.1", "--client-auth"],
        {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert rotate.returncode == 0, rotate.stderr
    new = describe(tls.cert_file)["sha256"]
    assert new != before and served_fingerprint(port, tls.ca_file) == before  # nothing changes before the reload
    reload = run_cli(
        [str(cluster.config.consul_bin), "reload"],
        {
            "PATH": os.environ["PATH"],
            "CONSUL_HTTP_ADDR": cluster.consul_url,
            "CONSUL_CACERT": str(tls.ca_file),
            "CONSUL_HTTP_TOKEN_FILE": str(cluster.secrets().file("operator.token")),
        },
    )
    assert reload.returncode == 0, reload.stderr
    took = wait_for(lambda: served_fingerprint(port, tls.ca_file) == new, 10, "the new certificate served")
    record_figure("secure.consul_cert_rotation_served_after_s", took)
    # Same CA: the workers, the renderer and a new request trust it without a restart.
    ids = worker_ids(cluster)
    wait_for(lambda: len(cluster.passing()) == len(ids), 15, "workers passing after the rotation")
    cluster.wait_gateway_serving()
    # The next `up` keeps the rotated certificate: its names and CA are the ones it asks for.
    again = ensure_consul_tls(tls.cert_file.parent)
    assert describe(again.cert_file)["sha256"] == new


def test_anonymous_or_wrong_tokens_can_neither_register_deregister_nor_read_tokens(secure):
    cluster, _ = secure
    victim = next(iter(worker_ids(cluster)))
    wrong = str(uuid.uuid4())
    definition = {"Name": "ner-worker", "ID": "intruder-1", "Address": "127.0.0.1", "Port": 9}
    for token in (None, wrong, cluster.token("gateway")):
        register = consul(cluster, "PUT", "/v1/agent/service/register", token, definition)
        assert register.status_code == 403, register.text
        catalog = consul(
            cluster,
            "PUT",
            "/v1/catalog/register",
            token,
            {
                "Node": "ner-local",
                "Address": "127.0.0.1",
                "Service": {"Service": "ner-worker", "ID": "intruder-1", "Port": 9},
            },
        )
        assert catalog.status_code == 403, catalog.text
        deregister = consul(cluster, "PUT", f"/v1/agent/service/deregister/{victim}", token)
        assert deregister.status_code == 403, deregister.text
        maintenance = consul(cluster, "PUT", f"/v1/agent/service/maintenance/{victim}?enable=true", token)
        assert maintenance.status_code == 403, maintenance.text
    for token in (None, wrong, cluster.token("gateway"), cluster.token("worker")):
        listing = consul(cluster, "GET", "/v1/acl/tokens", token)
        assert listing.status_code == 403, listing.text
        assert "SecretID" not in listing.text
    # Permission denied names the missing grant; an unknown token is refused outright.
    assert "Permission denied" in consul(cluster, "PUT", "/v1/agent/service/register", None, definition).text
    assert "ACL not found" in consul(cluster, "PUT", "/v1/agent/service/register", wrong, definition).text
    # A worker's token is for its own service name only.
    other = consul(
        cluster, "PUT", "/v1/agent/service/register", cluster.token("worker"), {**definition, "Name": "other-service"}
    )
    assert other.status_code == 403
    # Nothing changed, and anonymous reads see nothing at all.
    assert victim in worker_ids(cluster) and "intruder-1" not in worker_ids(cluster)
    assert consul(cluster, "GET", "/v1/health/service/ner-worker").json() == []
    assert consul(cluster, "GET", "/v1/agent/services").json() == {}


def test_workers_with_their_token_register_pass_drain_and_deregister_and_the_renderer_follows(secure):
    cluster, _ = secure
    upstream = cluster.nginx_dir() / "upstream.conf"
    before = worker_ids(cluster)
    cluster.scale(2)  # waits until 2 workers pass in Consul
    new = worker_ids(cluster) - before
    assert len(new) == 1
    ports = {proc.port for proc in cluster.workers().values()}
    wait_for(
        lambda: all(f":{port} " in upstream.read_text() for port in ports),
        10,
        "both workers in the upstream (renderer, read token)",
    )
    wait_not_rate_limited(cluster)  # scale() itself sent requests until both workers answered
    served = set()
    for _ in range(8):
        response = requests.post(f"{cluster.config.gateway_url}/v1/ner", json=TEXT, timeout=10)
        assert response.status_code == 200, response.text
        served.add(response.headers["X-Worker-Id"])
    assert new <= served

    leaving = cluster.workers()["worker-2"]
    cluster.scale(1)  # SIGTERM: maintenance, drain, deregister, with the worker token
    assert not leaving.alive()
    assert worker_ids(cluster) == before
    wait_for(lambda: f":{leaving.port} " not in upstream.read_text(), 10, "drained worker out of the upstream")
    log = Path(leaving.log).read_text()
    for event in ("registrar.registered", "registrar.maintenance", "registrar.drained", "registrar.deregistered"):
        assert event in log, f"{event} missing from {leaving.log}"
    assert "registrar.consul_error" not in log and "Permission denied" not in log
    renderer_log = Path(cluster.live()["renderer"].log).read_text()
    assert "403" not in renderer_log and "Permission denied" not in renderer_log


def test_the_rate_limit_answers_json_429_with_retry_after_past_its_burst(secure, record_figure):
    cluster, _ = secure
    url = f"{cluster.config.gateway_url}/v1/ner"
    wait_not_rate_limited(cluster)
    statuses, limited = requests_until_limited(url, 100)
    assert limited is not None, statuses
    assert BURST <= len(statuses) - 1 <= BURST + 5, statuses  # burst answered at once, then 429
    assert_gateway_429(limited)
    # The gateway's own health URL is never limited, even for a client that is.
    assert requests.get(url, timeout=5).status_code == 429
    assert all(
        requests.get(f"{cluster.config.gateway_url}/gateway/health", timeout=5).status_code == 200 for _ in range(20)
    )
    waited = wait_for(lambda: requests.get(url, timeout=5).status_code != 429, 5, "served again", interval=0.05)
    record_figure("secure.rate_limit_requests_before_429", len(statuses) - 1)
    record_figure("secure.rate_limit_served_again_after_s", waited)
    error_log = (cluster.nginx_dir() / "error.log").read_text()
    assert "limiting requests" in error_log
    wait_not_rate_limited(cluster)


def test_consul_restart_keeps_acl_state_and_tokens(secure, record_figure):
    cluster, said = secure
    store = cluster.secrets()
    tokens = {role: store.token(role) for role in ("bootstrap", "worker", "gateway", "agent", "operator")}
    ids = worker_ids(cluster)
    proc = cluster.live()["consul"]
    os.kill(proc.pid, signal.SIGTERM)
    wait_for(lambda: not proc.alive(), 15, "consul to stop")
    started = time.monotonic()
    cluster.start_consul()
    record_figure("secure.consul_restart_s", time.monotonic() - started)
    assert {role: store.token(role) for role in tokens} == tokens
    assert "ACLs in place" in said[-1]
    again = ensure_acls(cluster.consul_url, store, ca_file=cluster.mode.consul_tls().ca_file)
    assert again.created == [] and not again.bootstrapped
    wait_for(
        lambda: worker_ids(cluster) == ids and len(cluster.passing()) == len(ids),
        30,
        "the worker passing again after the restart",
    )
    cluster.wait_gateway_serving()


def test_the_agent_token_keeps_anti_entropy_working_under_default_deny(secure):
    cluster, _ = secure
    log = Path(cluster.live()["consul"].log).read_text().splitlines()
    last_set = max(i for i, line in enumerate(log) if "Updated agent's ACL token" in line)
    assert not [line for line in log[last_set:] if "blocked by ACLs" in line]
    node = consul(cluster, "GET", "/v1/agent/self", cluster.token("operator")).json()["Config"]["NodeName"]
    entry = consul(cluster, "GET", f"/v1/catalog/node/{node}", cluster.token("gateway"))
    assert entry.status_code == 200 and entry.json()["Node"]["Node"] == node


def test_secrets_are_0600_files_and_never_appear_in_logs_or_output(secure):
    cluster, said = secure
    store = cluster.secrets()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700
    secrets = store.all_secrets()
    assert set(secrets) == {
        "bootstrap.token",
        "operator.token",
        "worker.token",
        "gateway.token",
        "agent.token",
        "prometheus.token",
        "consul-gossip.json",
    }
    for name in secrets:
        assert stat.S_IMODE(store.file(name).stat().st_mode) == 0o600, name
    # Nothing secret in the repository either: the gossip key and tokens are only generated.
    assert not any(value in (REPO_ROOT / "consul" / "secure.hcl").read_text() for value in secrets.values())

    status = run_status(cluster)
    assert status.returncode == 0, status.stderr
    assert "ner-worker-" in status.stdout  # the operator token was used: the instance is listed

    scanned = {"say": "\n".join(said), "status": status.stdout + status.stderr}
    # Consul's own state (consul-data, 0700) holds tokens and the keyring by design; all else is checked.
    for path in cluster.config.run_dir.rglob("*"):
        parts = path.relative_to(cluster.config.run_dir).parts
        if path.is_file() and parts[0] not in ("secrets", "consul-data"):
            scanned[str(path)] = path.read_text(errors="replace")
    assert any(name.endswith("consul.log") for name in scanned) and any("worker-1" in n for n in scanned)
    leaks = [
        (name, secret)
        for secret, value in secrets.items()
        for name, text in scanned.items()
        if value in text or value.replace("-", "") in text
    ]
    assert leaks == []


def test_nginx_config_passes_nginx_t_in_both_modes_and_without_a_limits_snippet(secure, tmp_path):
    cluster, _ = secure
    args = cluster.nginx_args()
    check = subprocess.run([cluster.config.nginx_bin, "-t", *args], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert "rate=5r/s" in (cluster.nginx_dir() / "limits.d" / "rate.conf").read_text()
    # The same template with a normal-mode snippet, and with none (upstream_renderer fill-nginx-conf users).
    normal = LocalCluster(
        replace(cluster.config, run_dir=tmp_path, secure=False, gateway_rate="", gateway_burst=""),
        say=lambda message: None,
    )
    write_nginx_conf(normal.config, secure=False)
    shutil.copy(cluster.nginx_dir() / "upstream.conf", normal.nginx_dir() / "upstream.conf")
    assert "rate=1000r/s" in (normal.nginx_dir() / "limits.d" / "rate.conf").read_text()
    for remove in (False, True):
        if remove:
            (normal.nginx_dir() / "limits.d" / "rate.conf").unlink()
        check = subprocess.run(
            [cluster.config.nginx_bin, "-t", *normal.nginx_args()], capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stderr


def test_up_on_a_running_secure_cluster_recreates_a_removed_token_for_rotation(secure):
    cluster, _ = secure
    store = cluster.secrets()
    old = store.token("gateway")
    old_accessor = consul(cluster, "GET", "/v1/acl/token/self", old).json()["AccessorID"]
    before = {name: proc.pid for name, proc in cluster.live().items()}
    store.file("gateway.token").unlink()
    cluster.up(1)
    new = store.token("gateway")
    assert new and new != old
    assert stat.S_IMODE(store.file("gateway.token").stat().st_mode) == 0o600
    assert {name: proc.pid for name, proc in cluster.live().items()} == before  # nothing restarted
    assert consul(cluster, "GET", "/v1/health/service/ner-worker", new).json()  # the new token reads
    deleted = consul(cluster, "DELETE", f"/v1/acl/token/{old_accessor}", cluster.token("operator"))
    assert deleted.status_code == 200
    assert consul(cluster, "GET", "/v1/health/service/ner-worker", old).status_code == 403
