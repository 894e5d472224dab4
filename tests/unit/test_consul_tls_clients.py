"""Consul's API over TLS (secured mode): every client speaks HTTPS when told to and trusts only the cluster's CA."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Iterator

import pytest
import requests

from registrar.client import build_client
from registrar.config import ConfigError, load_config
from scripts.localmode.config import load_config as cluster_config
from scripts.localmode.consul import consul_program, ports_override
from scripts.localmode.mode import RunMode
from scripts.monitoring import prometheus_conf
from scripts.secured.acl_client import AclClient, AclError
from scripts.secured.consul_tls import DNS_NAMES, IPS, consul_tls_at, ensure_consul_tls
from scripts.tls.issue import has_client_auth, load_cert
from scripts.tls.store import describe
from tests.unit import fake_tls_consul
from tests.unit.fake_tls_consul import FakeTlsConsul
from upstream_renderer.cli import ssl_requested
from upstream_renderer.watch import Consul, ConsulTls, ConsulUnavailable, consul_base

REPO_ROOT = Path(__file__).resolve().parents[2]
SD_SCRIPT = REPO_ROOT / "scripts" / "monitoring" / "consul_file_sd.py"
_spec = importlib.util.spec_from_file_location("consul_file_sd", SD_SCRIPT)
sd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sd)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTlsConsul]:
    yield from fake_tls_consul.serve(tmp_path_factory.mktemp("consul-tls"))


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA's certificate: what a client trusting the wrong CA holds."""
    return ensure_consul_tls(tmp_path_factory.mktemp("other-ca")).ca_file


# ---- the certificate and the agent's settings ----------------------------------------------


def test_consuls_certificate_names_the_server_name_rpc_checks_and_loopback_and_serves_as_client_too(tmp_path):
    tls = ensure_consul_tls(tmp_path)
    described = describe(tls.cert_file)
    assert set(described["dns_names"]) == set(DNS_NAMES) and set(described["ips"]) == set(IPS)
    assert "server.dc1.consul" in DNS_NAMES
    assert has_client_auth(load_cert(tls.cert_file.read_bytes()))  # RPC to other agents presents it too
    assert tls == consul_tls_at(tmp_path)  # where the run directory's mode looks for them
    assert ensure_consul_tls(tmp_path) == tls and describe(tls.cert_file)["sha256"] == described["sha256"]


def test_secure_ports_close_plain_http_and_put_https_on_the_api_port(tmp_path):
    config = cluster_config({"NER_RUN_DIR": str(tmp_path), "NER_CONSUL_HTTP_PORT": "18500"})
    secure = json.loads(ports_override(config, secure=True).read_text())["ports"]
    assert (secure["http"], secure["https"]) == (-1, 18500)
    normal = json.loads(ports_override(config, secure=False).read_text())["ports"]
    assert normal["http"] == 18500 and "https" not in normal


def test_the_secured_agent_loads_the_tls_policy_and_the_run_directorys_files(tmp_path):
    config = cluster_config({"NER_RUN_DIR": str(tmp_path)})
    tls = ensure_consul_tls(tmp_path / "tls")
    program = consul_program(config, ports_override(config, True), tmp_path / "gossip.json", tls)
    assert f"-config-file={REPO_ROOT / 'consul' / 'tls.hcl'}" in program.argv
    files = json.loads((tmp_path / "consul-tls.json").read_text())
    assert files == {"ca_file": str(tls.ca_file), "cert_file": str(tls.cert_file), "key_file": str(tls.key_file)}
    assert config.consul_http_port in program.ports
    with pytest.raises(ValueError):
        consul_program(config, ports_override(config, True), tmp_path / "gossip.json", None)


def test_tls_hcl_turns_client_certificates_off_for_https_and_on_for_rpc_and_names_no_file():
    text = (REPO_ROOT / "consul" / "tls.hcl").read_text()
    settings = dict(line.replace(" ", "").split("=") for line in text.splitlines() if "=" in line and line[0] != "#")
    assert settings == {
        "verify_incoming": "false",
        "verify_incoming_https": "false",
        "verify_incoming_rpc": "true",
        "verify_outgoing": "true",
        "verify_server_hostname": "true",
    }


def test_the_run_directorys_mode_hands_clients_https_and_the_ca_only_when_secure(tmp_path):
    mode = RunMode(tmp_path, requested=True)
    assert mode.consul_url(8500) == "https://127.0.0.1:8500"
    assert mode.consul_client_env() == {"CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": str(tmp_path / "tls" / "ca.pem")}
    assert mode.consul_verify() == str(tmp_path / "tls" / "ca.pem")
    normal = RunMode(tmp_path / "other", requested=False)
    assert (normal.consul_url(8500), normal.consul_client_env(), normal.consul_verify()) == (
        "http://127.0.0.1:8500",
        {},
        True,
    )


# ---- the registrar (workers, `python -m registrar`, `make status`) ---------------------------


def test_registrar_config_reads_https_from_the_address_or_consul_http_ssl(agent):
    ca = str(agent.tls.ca_file)
    assert load_config({"CONSUL_HTTP_ADDR": f"https://{agent.address}"}).consul_url == f"https://{agent.address}"
    config = load_config({"CONSUL_HTTP_ADDR": agent.address, "CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": ca})
    assert (config.consul_url, config.consul_verify, config.consul_cert) == (f"https://{agent.address}", ca, None)
    assert load_config({"CONSUL_HTTP_ADDR": agent.address}).consul_verify is True  # never off


def test_registrar_config_refuses_missing_tls_files_and_a_key_without_a_certificate(tmp_path, agent):
    with pytest.raises(ConfigError, match="CONSUL_CACERT"):
        load_config({"CONSUL_CACERT": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="CONSUL_CLIENT_KEY"):
        load_config({"CONSUL_CLIENT_KEY": str(agent.tls.key_file)})
    both = load_config({"CONSUL_CLIENT_CERT": str(agent.tls.cert_file), "CONSUL_CLIENT_KEY": str(agent.tls.key_file)})
    assert both.consul_cert == (str(agent.tls.cert_file), str(agent.tls.key_file))


def test_the_registrars_client_verifies_consul_against_the_configured_ca(agent, stranger_ca):
    trusted = build_client(
        load_config({"CONSUL_HTTP_ADDR": f"https://{agent.address}", "CONSUL_CACERT": str(agent.tls.ca_file)})
    )
    assert trusted.health.service("ner-worker")[1] == []
    stranger = build_client(
        load_config({"CONSUL_HTTP_ADDR": f"https://{agent.address}", "CONSUL_CACERT": str(stranger_ca)})
    )
    with pytest.raises(requests.exceptions.SSLError):
        stranger.health.service("ner-worker")


# ---- the renderer (upstream_renderer) --------------------------------------------------------


@pytest.mark.parametrize(
    "addr, ssl, base",
    [
        ("127.0.0.1:8500", False, "http://127.0.0.1:8500"),
        ("127.0.0.1:8500", True, "https://127.0.0.1:8500"),
        ("https://consul:8500/", False, "https://consul:8500"),
        ("http://consul:8500", True, "https://consul:8500"),  # TLS asked for: never back to http
    ],
)
def test_the_renderer_and_discovery_build_the_same_base_url(addr, ssl, base):
    assert consul_base(addr, ssl) == base
    assert sd.consul_base(addr, ssl) == base


def test_consul_http_ssl_is_read_as_consuls_own_clients_read_it():
    assert ssl_requested({"CONSUL_HTTP_SSL": "true"}) and ssl_requested({"CONSUL_HTTP_SSL": "1"})
    assert not ssl_requested({"CONSUL_HTTP_SSL": "false"}) and not ssl_requested({})


def test_the_renderer_reads_https_consul_with_the_ca_and_fails_with_another(agent, stranger_ca):
    trusted = Consul(f"https://{agent.address}", "token-1", tls=ConsulTls(ca_file=str(agent.tls.ca_file)))
    assert trusted.health_service("ner-worker", 0, 1.0) == ([], 5)
    assert agent.asked[-1] == ("/v1/health/service/ner-worker?stale=", "token-1")
    stranger = Consul(f"https://{agent.address}", tls=ConsulTls(ca_file=str(stranger_ca)))
    with pytest.raises(ConsulUnavailable, match="SSLError"):
        stranger.health_service("ner-worker", 0, 1.0)


def test_the_renderers_ca_is_not_overridden_by_requests_ca_bundle(agent, stranger_ca, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stranger_ca))
    trusted = Consul(f"https://{agent.address}", tls=ConsulTls(ca_file=str(agent.tls.ca_file)))
    assert trusted.health_service("ner-worker", 0, 1.0) == ([], 5)


# ---- Prometheus' discovery and scrape --------------------------------------------------------


def test_discovery_queries_https_consul_with_the_ca_and_fails_with_another(agent, stranger_ca):
    base = sd.consul_base(agent.address, True)
    assert sd.query(base, "ner-worker", 0, "1s", "t", sd.tls_context(str(agent.tls.ca_file))) == ([], 5)
    with pytest.raises(OSError):
        sd.query(base, "ner-worker", 0, "1s", "t", sd.tls_context(str(stranger_ca)))


def test_prometheus_scrapes_consul_over_https_with_the_ca_only_when_asked(tmp_path):
    common = dict(
        scrape_interval="10s",
        evaluation_interval="10s",
        sd_refresh="5s",
        consul="127.0.0.1:8500",
        gateway_metrics="127.0.0.1:3903",
        prometheus="127.0.0.1:9090",
        rules=tmp_path,
        cluster_rules=tmp_path,
        targets=tmp_path,
        token_file=None,
    )
    secure = prometheus_conf.render(**common, consul_https=True, consul_ca_file=Path("/run/tls/ca.pem"))
    assert "    scheme: https\n    tls_config:\n      ca_file: /run/tls/ca.pem\n" in secure
    assert "\n    scheme: https" not in prometheus_conf.render(**common)
    assert prometheus_conf.split_consul_addr("https://consul:8500") == ("consul:8500", True)
    assert prometheus_conf.split_consul_addr("consul:8500", ssl_on=True) == ("consul:8500", True)
    assert prometheus_conf.split_consul_addr("consul:8500") == ("consul:8500", False)


# ---- the ACL set-up ---------------------------------------------------------------------------


def test_acl_set_up_fails_at_once_on_a_certificate_it_cannot_verify(agent, stranger_ca):
    client = AclClient(f"https://{agent.address}", ca_file=stranger_ca)
    with pytest.raises(AclError, match="TLS"):  # not AclNotReady: retrying would not help
        client.token_self("some-token")
