"""Secured mode's pure logic: policies, secret files, rate-limit settings, the mode of a run dir."""

from __future__ import annotations

import json
import stat
import string
from dataclasses import replace

import pytest

from scripts.localcluster import REPO_ROOT, LocalCluster, load_config
from scripts.localmode.gateway import nginx_dir, write_nginx_conf
from scripts.secured import acl_policies as policies
from scripts.secured.ratelimit import RateLimit, limits_snippet
from scripts.secured.secretfiles import GOSSIP_CONFIG, SecretStore, mask


def test_worker_policy_writes_exactly_its_service_and_reads_nodes():
    assert policies.policy_rules("worker", "ner-worker") == {
        "service": {"ner-worker": {"policy": "write"}},
        "node_prefix": {"": {"policy": "read"}},
    }


def test_gateway_policy_is_read_only():
    assert policies.policy_rules("gateway") == {
        "service_prefix": {"": {"policy": "read"}},
        "node_prefix": {"": {"policy": "read"}},
        "key_prefix": {"ner/rollout/": {"policy": "read"}},
    }


def test_agent_policy_is_its_own_node_or_any_node():
    assert policies.policy_rules("agent", node="ner-local")["node"] == {"ner-local": {"policy": "write"}}
    assert policies.policy_rules("agent", node=None) == {
        "node_prefix": {"": {"policy": "write"}},
        "service_prefix": {"": {"policy": "read"}},
    }


@pytest.mark.parametrize(
    "role, service, node",
    [("operator", "ner-worker", None), ("worker", 'x" {', None), ("agent", "ner-worker", 'n" } acl = "write')],
)
def test_policy_rules_refuse_unknown_roles_and_names_that_would_inject_rules(role, service, node):
    with pytest.raises(ValueError):
        policies.policy_rules(role, service, node)


def test_policy_names_per_role():
    assert [policies.policy_name(r) for r in ("worker", "gateway", "agent")] == [
        "ner-worker-worker",
        "ner-worker-gateway",
        "ner-worker-agent",
    ]


def test_operator_tokens_link_global_management_and_the_others_their_policy_by_name():
    assert policies.policy_link("operator") == {"ID": policies.GLOBAL_MANAGEMENT_POLICY_ID}
    assert policies.policy_link("worker") == {"Name": "ner-worker-worker"}


def test_secret_store_writes_0600_files_in_a_0700_dir_and_replaces_atomically(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    path = store.write("worker.token", "s3cr3t")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.token("worker") == "s3cr3t"
    store.write("worker.token", "other")
    assert store.token("worker") == "other"
    assert [p.name for p in store.path.iterdir()] == ["worker.token"]  # no temp file left
    assert store.token("gateway") is None


def test_secret_store_refuses_names_outside_its_directory(tmp_path):
    with pytest.raises(ValueError):
        SecretStore(tmp_path).write("../escape", "x")


def test_all_secrets_unwraps_the_gossip_key(tmp_path):
    store = SecretStore(tmp_path)
    store.write(GOSSIP_CONFIG, json.dumps({"encrypt": "a2V5"}))
    store.write("agent.token", "t")
    assert store.all_secrets() == {"agent.token": "t", GOSSIP_CONFIG: "a2V5"}


def test_mask_shows_nothing_of_the_secret():
    secret = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert "0f1e" not in mask(secret) and "e1f0" not in mask(secret)


@pytest.mark.parametrize("secure, rate, burst", [(False, "1000r/s", 2000), (True, "20r/s", 40)])
def test_rate_limit_defaults_per_mode(secure, rate, burst):
    assert RateLimit.from_env({}, secure) == RateLimit(rate, burst)


def test_rate_limit_overrides_and_off():
    assert RateLimit.from_env({"NER_GATEWAY_RATE": "600r/m", "NER_GATEWAY_BURST": "5"}, True) == RateLimit("600r/m", 5)
    assert RateLimit.from_env({"NER_GATEWAY_RATE": "off"}, True) == RateLimit(None, 0)
    assert limits_snippet(RateLimit(None, 0), "normal") is None


@pytest.mark.parametrize(
    "env",
    [
        {"NER_GATEWAY_RATE": "20"},
        {"NER_GATEWAY_RATE": "20r/s; evil"},
        {"NER_GATEWAY_RATE": "0r/s"},
        {"NER_GATEWAY_BURST": "-1"},
        {"NER_GATEWAY_BURST": "ten"},
    ],
)
def test_rate_limit_refuses_values_nginx_would_not_take(env):
    with pytest.raises(ValueError):
        RateLimit.from_env(env, False)


def test_limits_snippet_defines_the_zone_on_the_templates_key_and_applies_it():
    snippet = limits_snippet(RateLimit("20r/s", 40), "secure")
    assert "limit_req_zone $ner_rate_key zone=ner_per_client:10m rate=20r/s;" in snippet
    assert "limit_req zone=ner_per_client burst=40 nodelay;" in snippet


def test_nginx_template_still_fills_with_its_three_placeholders_and_includes_the_limits():
    template = (REPO_ROOT / "nginx-template" / "nginx.conf.tmpl").read_text()
    text = string.Template(template).substitute(PREFIX="/p", LISTEN="127.0.0.1:1", UPSTREAM_CONF="/p/u.conf")
    assert "include /p/limits.d/*.conf;" in text
    assert "map $uri $ner_rate_key" in text and "limit_req_status 429;" in text
    assert "error_page 429 =429 @rate_limited;" in text
    assert "add_header Retry-After 1 always;" in text
    assert "large_client_header_buffers 4 8k;" in text
    # the zone and limit_req come only from the snippet: without one, no rate limit at all
    directives = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in directives if line.startswith(("limit_req_zone", "limit_req "))]


def test_load_config_reads_secure_and_rejects_bad_values():
    assert load_config({}).secure is None  # unset: the run directory's recorded mode
    assert load_config({"NER_SECURE": "1"}).secure is True
    assert load_config({"NER_SECURE": "0"}).secure is False
    with pytest.raises(ValueError):
        load_config({"NER_SECURE": "maybe"})
    with pytest.raises(ValueError):
        load_config({"NER_GATEWAY_RATE": "fast"})


def test_the_run_dirs_recorded_mode_wins_over_the_config(tmp_path):
    cluster = LocalCluster(replace(load_config({}), run_dir=tmp_path), say=lambda m: None)
    assert cluster.secure is False and cluster.token("worker") is None
    cluster.mode.record(True)
    assert cluster.secure is True
    with pytest.raises(RuntimeError, match="no worker token"):
        cluster.token("worker")
    cluster.secrets().write("worker.token", "w")
    assert cluster.token_env("worker") == {"CONSUL_HTTP_TOKEN": "w"}
    assert cluster.mode.consul_headers("worker") == {"X-Consul-Token": "w"}


@pytest.mark.parametrize("secure, expected", [(False, "rate=1000r/s"), (True, "rate=20r/s")])
def test_write_nginx_conf_writes_the_modes_limits(tmp_path, secure, expected):
    config = replace(load_config({}), run_dir=tmp_path)
    write_nginx_conf(config, secure)
    assert expected in (nginx_dir(config) / "limits.d" / "rate.conf").read_text()
    write_nginx_conf(replace(config, gateway_rate="off"), secure)
    assert not (nginx_dir(config) / "limits.d" / "rate.conf").exists()


def test_secure_hcl_enables_default_deny_acls_and_holds_no_secret():
    text = (REPO_ROOT / "consul" / "secure.hcl").read_text()
    for line in (
        "enabled = true",
        'default_policy = "deny"',
        "enable_token_persistence = true",
        'down_policy = "extend-cache"',
        "encrypt_verify_incoming = true",
    ):
        assert line in text
    assert "encrypt =" not in text and "agent =" not in text and "master" not in text


class NoPrograms:
    """A supervisor that runs nothing yet: no Consul program, so `up` decides the mode."""

    def ensure_running(self) -> bool:
        return False

    def state(self, name: str) -> None:
        return None

    def configured(self) -> list[str]:
        return []


def test_secure_mode_is_sticky_until_switched_off_explicitly(tmp_path, monkeypatch):
    started = []
    base = replace(load_config({"NER_MONITOR": "0"}), run_dir=tmp_path)

    def up(secure):
        cluster = LocalCluster(replace(base, secure=secure), say=lambda m: None)
        monkeypatch.setattr(cluster, "supervisor", NoPrograms())
        monkeypatch.setattr(cluster, "start_consul", lambda: started.append(cluster.secure))
        monkeypatch.setattr(cluster, "start_gateway", lambda: None)
        monkeypatch.setattr(cluster, "wait_workers_passing", lambda count, **options: 0.0)
        cluster.up(0)

    up(None)
    up(True)
    up(None)
    up(False)
    up(None)
    assert started == [False, True, True, False, False]
