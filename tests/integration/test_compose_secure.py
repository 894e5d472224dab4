"""The secured compose form (docker-compose.secure.yml): checked statically, its entrypoint
logic run in a shell, and its one-shots' commands run against a real Consul 1.8.7 configured
as the compose server is (consul/compose.json + consul/secure.hcl + a generated gossip key +
consul/tls.hcl with the certificate the consul-tls one-shot issues: HTTPS only).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.secured.secretfiles import SecretStore
from scripts.tls.store import describe
from tests.integration.test_compose_file import COMPOSE_FILE, resolve_config
from tests.support.processes import LOCAL_BIN, REPO_ROOT, ManagedProcess, free_port, wait_until

SECURE_FILE = REPO_ROOT / "docker-compose.secure.yml"
WITH_TOKEN = REPO_ROOT / "nginx-template" / "with-consul-token.sh"
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
# Where the gateway entrypoint looks for the rate-limit command (docker-compose.secure.yml mounts it).
GATEWAY_LIMITS = "/etc/ner-gateway/securemode.py"


@pytest.fixture(scope="module")
def merged() -> dict:
    """docker-compose.yml + docker-compose.secure.yml as the compose tool merges them."""
    return resolve_config(COMPOSE_FILE, SECURE_FILE)


def mounts(service: dict) -> dict[str, str]:
    """Mount target -> "source:mode" (docker-compose 1.x short form or compose v2 long form)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = f"{volume['source']}:{'ro' if volume.get('read_only') else 'rw'}"
        else:
            source, target, *mode = volume.split(":")
            found[target] = f"{source}:{mode[0] if mode else 'rw'}"
    return found


def host_ips(service: dict) -> set[str]:
    return {p.get("host_ip", "") if isinstance(p, dict) else str(p).rsplit(":", 2)[0] for p in service["ports"]}


# ---- the merged compose config -------------------------------------------------------------


def test_consul_runs_with_secure_hcl_and_the_gossip_key_and_publishes_on_loopback_only(merged):
    consul = merged["services"]["consul"]
    assert mounts(consul)["/consul/config/secure.hcl"].endswith("consul/secure.hcl:ro")
    assert mounts(consul)["/secrets"] == "secrets:ro"
    assert "-config-file=/consul/config/secure.hcl" in consul["command"]
    assert "-config-file=/secrets/consul-gossip.json" in consul["command"]
    assert consul["depends_on"]["gossip-key"]["condition"] == "service_completed_successfully"
    assert host_ips(consul) == {"127.0.0.1"}


def test_consul_serves_https_only_with_the_certificate_the_tls_one_shot_issues(merged):
    consul = merged["services"]["consul"]
    assert "-config-file=/consul/config/tls.hcl" in consul["command"]
    assert "-config-file=/consul/config/compose-tls.json" in consul["command"]
    assert mounts(consul)["/consul/config/tls.hcl"].endswith("consul/tls.hcl:ro")
    assert mounts(consul)["/consul/tls"] == "consul-tls:ro" and mounts(consul)["/consul/ca"] == "consul-ca:ro"
    assert consul["depends_on"]["consul-tls"]["condition"] == "service_completed_successfully"
    files = json.loads((REPO_ROOT / "consul" / "compose-tls.json").read_text())
    assert files["ports"] == {"http": -1, "https": 8500}  # the published port speaks TLS only
    assert {files["ca_file"], files["cert_file"], files["key_file"]} == {
        "/consul/ca/ca.pem",
        "/consul/tls/consul.pem",
        "/consul/tls/consul-key.pem",
    }
    # Its healthcheck's CLI talks HTTPS to it, verified.
    assert consul["environment"]["CONSUL_HTTP_ADDR"] == "https://127.0.0.1:8500"
    assert consul["environment"]["CONSUL_CACERT"] == "/consul/ca/ca.pem"


def test_every_consul_client_speaks_https_and_holds_only_the_cas_certificate(merged):
    services = merged["services"]
    for name in ("acl-init", "worker", "gateway"):
        env = services[name]["environment"]
        assert (env["CONSUL_HTTP_ADDR"], env["CONSUL_CACERT"]) == ("https://consul:8500", "/consul-ca/ca.pem"), name
        assert mounts(services[name])["/consul-ca"] == "consul-ca:ro", name
    holders = {
        volume: sorted(
            name for name, service in services.items() if volume in {m.split(":")[0] for m in mounts(service).values()}
        )
        for volume in ("consul-tls-ca", "consul-tls")
    }
    assert holders == {"consul-tls-ca": ["consul-tls"], "consul-tls": ["consul", "consul-tls"]}


def test_acl_init_runs_secured_init_after_consul_and_workers_and_gateway_wait_for_it(merged):
    services = merged["services"]
    init = services["acl-init"]
    assert "python -m scripts.secured init --consul https://consul:8500 --secrets /secrets" in " ".join(init["command"])
    assert "consul" in init["depends_on"] and init["restart"] == "no"
    assert mounts(init)["/secrets"] == "secrets:rw"
    for name in ("worker", "gateway"):
        assert services[name]["depends_on"]["acl-init"]["condition"] == "service_completed_successfully"


def test_workers_and_gateway_mount_only_their_own_token_read_only(merged):
    services = merged["services"]
    assert mounts(services["worker"])["/secrets"] == "worker-token:ro"
    assert mounts(services["gateway"])["/secrets"] == "gateway-token:ro"
    assert {"secrets", "worker-token", "gateway-token"} <= set(merged["volumes"])


def test_no_token_in_any_environment_and_the_gateway_gets_the_rate_limit_settings(merged):
    for name, service in merged["services"].items():
        assert not any("TOKEN" in key for key in (service.get("environment") or {})), name
    assert {"NER_GATEWAY_RATE", "NER_GATEWAY_BURST"} <= set(merged["services"]["gateway"]["environment"])


def test_the_normal_form_keeps_its_services_and_publishes_consul_on_loopback_by_default():
    normal = resolve_config(COMPOSE_FILE)
    assert not {"acl-init", "gossip-key"} & set(normal["services"])
    assert host_ips(normal["services"]["consul"]) == {"127.0.0.1"}


def test_images_start_through_the_token_entrypoint_and_ship_the_secured_package():
    worker = (REPO_ROOT / "worker" / "Dockerfile").read_text()
    gateway = (REPO_ROOT / "nginx-template" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["with-consul-token", "/secrets/worker.token"]' in worker
    assert "COPY scripts/secured/ scripts/secured/" in worker and "with-consul-token.sh" in worker
    assert '"/etc/ner-gateway/with-consul-token.sh", "/secrets/gateway.token"' in gateway


# ---- the entrypoint's token export -----------------------------------------------------------


def run_entrypoint(token_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = 'printf "%s" "${CONSUL_HTTP_TOKEN-<unset>}"'
    return subprocess.run(
        ["sh", str(WITH_TOKEN), str(token_file), "sh", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_the_entrypoint_exports_the_token_only_when_the_file_exists(tmp_path):
    env = {"PATH": os.environ["PATH"]}
    token = tmp_path / "worker.token"
    without = run_entrypoint(token, env)
    assert (without.returncode, without.stdout, without.stderr) == (0, "<unset>", "")
    token.write_text("0e8c0c2a-secret\n")
    exported = run_entrypoint(token, env)
    assert (exported.returncode, exported.stdout, exported.stderr) == (0, "0e8c0c2a-secret", "")
    # An explicitly set token wins over the file.
    assert run_entrypoint(token, {**env, "CONSUL_HTTP_TOKEN": "explicit"}).stdout == "explicit"


# ---- the one-shots' commands against a real secured Consul -----------------------------------


def secured(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The one-shots' command, as the worker image runs it from its /app."""
    return subprocess.run(
        [PYTHON, "-m", "scripts.secured", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def issue_like_the_tls_one_shot(merged: dict, root: Path) -> subprocess.CompletedProcess:
    """The consul-tls one-shot's own command, its /tls/... volumes under root."""
    command = merged["services"]["consul-tls"]["command"][-1].replace("/tls/", f"{root}/tls/")
    for volume in ("ca", "consul", "public"):
        (root / "tls" / volume).mkdir(parents=True)
    return subprocess.run(
        ["sh", "-c", command.replace("python ", f"{PYTHON} ", 1)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass(frozen=True)
class SecuredConsul:
    """A Consul started as the compose server is, reached over HTTPS with the CA the clients get."""

    process: ManagedProcess
    port: int
    ca_file: Path
    store: SecretStore
    output: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"X-Consul-Token": token} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=5, verify=str(self.ca_file), **kwargs)


@pytest.fixture(scope="module")
def secured_consul(merged, tmp_path_factory) -> Iterator[SecuredConsul]:
    """Consul 1.8.7 as the compose server runs it, after the consul-tls, gossip-key and acl-init one-shots."""
    workdir = tmp_path_factory.mktemp("compose-secure")
    store = SecretStore(workdir / "secrets")
    issued = issue_like_the_tls_one_shot(merged, workdir)
    assert issued.returncode == 0, issued.stderr
    # As in the image: no consul binary on PATH, so the key comes from Python.
    keygen = secured("gossip-key", "--secrets", str(store.path), env={"PATH": "/usr/bin:/bin"})
    assert keygen.returncode == 0, keygen.stderr
    port = free_port()
    tls = workdir / "tls"
    # What differs from the container: loopback, free ports, data dir, and where the volumes are.
    files = json.loads((REPO_ROOT / "consul" / "compose-tls.json").read_text())
    files.update(
        ca_file=str(tls / "public" / "ca.pem"),
        cert_file=str(tls / "consul" / "consul.pem"),
        key_file=str(tls / "consul" / "consul-key.pem"),
    )
    files["ports"].update(https=port, serf_lan=free_port(), serf_wan=free_port(), server=free_port())
    local = workdir / "local.json"
    local.write_text(
        json.dumps({"bind_addr": "127.0.0.1", "client_addr": "127.0.0.1", "data_dir": str(workdir / "data"), **files})
    )
    argv = [
        str(LOCAL_BIN / "consul"),
        "agent",
        "-ui",
        f"-config-file={REPO_ROOT / 'consul' / 'compose.json'}",
        f"-config-file={REPO_ROOT / 'consul' / 'secure.hcl'}",
        f"-config-file={store.file('consul-gossip.json')}",
        f"-config-file={REPO_ROOT / 'consul' / 'tls.hcl'}",
        f"-config-file={local}",
    ]
    process = ManagedProcess("consul", argv, workdir / "consul.log")
    process.start()
    try:
        agent = SecuredConsul(process, port, tls / "public" / "ca.pem", store, "")
        wait_until(lambda: agent.request("GET", "/v1/status/leader").json(), 30, describe="a Consul leader")
        init = secured("init", "--consul", agent.url, "--ca-file", str(agent.ca_file), "--secrets", str(store.path))
        assert init.returncode == 0, init.stderr
        yield replace(agent, output=issued.stdout + issued.stderr + init.stderr + keygen.stderr)
    finally:
        process.stop()


def register(agent: SecuredConsul, token: str | None, name: str = "ner-worker") -> requests.Response:
    body = {"Name": name, "ID": f"{name}-compose-test", "Address": "127.0.0.1", "Port": 9}
    return agent.request("PUT", "/v1/agent/service/register", token, json=body)


def test_the_tls_one_shot_hands_out_the_cas_certificate_alone_and_keeps_keys_0600(secured_consul):
    tls = secured_consul.ca_file.parents[1]
    assert stat.S_IMODE(secured_consul.ca_file.stat().st_mode) == 0o644
    assert sorted(path.name for path in (tls / "public").iterdir()) == ["ca.pem"]
    for key in (tls / "ca" / "ca-key.pem", tls / "consul" / "consul-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (tls / "consul" / "ca-key.pem").exists()
    names = describe(tls / "consul" / "consul.pem")
    assert {"server.dc1.consul", "consul", "localhost"} <= set(names["dns_names"]) and names["ips"] == ["127.0.0.1"]


def test_the_compose_consul_refuses_plain_http_and_its_certificate_needs_the_ca(secured_consul):
    plain = requests.get(f"http://127.0.0.1:{secured_consul.port}/v1/status/leader", timeout=5)
    assert plain.status_code == 400 and "HTTPS server" in plain.text
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{secured_consul.url}/v1/status/leader", timeout=5)


def test_the_worker_token_registers_ner_worker_and_anonymous_requests_cannot(secured_consul):
    agent, store = secured_consul, secured_consul.store
    assert register(agent, None).status_code == 403
    assert register(agent, store.token("gateway")).status_code == 403
    assert register(agent, store.token("worker"), name="other-service").status_code == 403
    assert register(agent, store.token("worker")).status_code == 200
    assert agent.request("GET", "/v1/agent/services").json() == {}  # anonymous reads see nothing
    assert "Gossip: true" in agent.process.log_path.read_text()


def test_the_consul_healthcheck_command_works_without_a_token(secured_consul, merged):
    env = merged["services"]["consul"]["environment"]
    assert env["CONSUL_HTTP_ADDR"].startswith("https://127.0.0.1:")
    check = subprocess.run(
        [str(LOCAL_BIN / "consul"), "catalog", "datacenters"],
        env={
            "PATH": os.environ["PATH"],
            "CONSUL_HTTP_ADDR": secured_consul.url,
            "CONSUL_CACERT": str(secured_consul.ca_file),
        },
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert check.returncode == 0 and check.stdout.strip() == "dc1", check.stderr


def test_init_is_idempotent_and_no_secret_reaches_the_output(secured_consul):
    agent, store, output = secured_consul, secured_consul.store, secured_consul.output
    again = secured("init", "--consul", agent.url, "--ca-file", str(agent.ca_file), "--secrets", str(store.path))
    assert again.returncode == 0 and "nothing new" in again.stderr, again.stderr
    secrets = store.all_secrets()
    assert {
        "bootstrap.token",
        "worker.token",
        "gateway.token",
        "agent.token",
        "operator.token",
        "prometheus.token",
        "consul-gossip.json",
    } == set(secrets)
    for text in (
        output,
        again.stdout + again.stderr,
        *(p.read_text() for p in (COMPOSE_FILE, SECURE_FILE, REPO_ROOT / "consul" / "secure.hcl")),
    ):
        assert not any(value in text for value in secrets.values())


def test_the_gateway_limits_command_writes_secure_defaults_or_nothing(merged, tmp_path):
    """As the gateway entrypoint runs it: the mounted file alone, standard library only (-S: no site)."""
    source = mounts(merged["services"]["gateway"])[GATEWAY_LIMITS].rsplit(":", 1)[0]
    lone = tmp_path / "etc" / Path(GATEWAY_LIMITS).name
    lone.parent.mkdir()
    shutil.copy(source, lone)
    out = tmp_path / "rate.conf"

    def limits(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-S", str(lone), "limits", "--out", str(out)],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    written = limits()
    assert written.returncode == 0, written.stderr
    assert "rate=20r/s" in out.read_text() and "burst=40 " in out.read_text()
    off = limits(NER_GATEWAY_RATE="off")
    assert off.returncode == 0 and not out.exists()
