"""The monitoring files in scripts/monitoring, checked by the tools that read them: promtool and mtail."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.localmode import monitoring
from scripts.localmode.config import load_config

MONITORING = Path(__file__).resolve().parents[2] / "scripts" / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.test.yml"))


def tool(name: str) -> str:
    """Installed by scripts/setup.sh (Debian's prometheus and mtail): missing is a failure, not a skip."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `make setup`"
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_every_rule_file_passes_promtool_check_rules():
    assert RULES
    done = run(tool("promtool"), "check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass_promtool_test_rules():
    assert RULE_TESTS
    done = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rendered_prometheus_configuration_passes_promtool_check_config(tmp_path):
    config = replace(load_config({"NER_RUN_DIR": str(tmp_path)}), run_dir=tmp_path)
    path = monitoring.write_prometheus_conf(config, token_file=None)
    done = run(tool("promtool"), "check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_secured_configuration_names_the_token_file_and_holds_no_token(tmp_path):
    token_file = tmp_path / "secrets" / "prometheus.token"
    token_file.parent.mkdir()
    token_file.write_text("secret-token-value\n")
    config = replace(load_config({}), run_dir=tmp_path)
    path = monitoring.write_prometheus_conf(config, token_file=token_file)
    text = path.read_text()
    assert f"credentials_file: {token_file}" in text and "secret-token-value" not in text
    done = run(tool("promtool"), "check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wanted_worker_count_is_a_valid_rule_file(tmp_path):
    config = replace(load_config({}), run_dir=tmp_path)
    monitoring.write_wanted(config, 3)
    path = monitoring.cluster_rules_dir(config) / "wanted.yml"
    assert "vector(3)" in path.read_text()
    done = run(tool("promtool"), "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


ACCESS_LINES = [
    # served at once; after a 429 retried on a second worker; no live worker; refused at the gateway
    '{"time":"2026-11-26T23:24:18+00:00","request_id":"a","method":"POST","uri":"/v1/ner","status":200,'
    '"request_time":0.006,"upstream_addr":"127.0.0.1:8102","upstream_status":"200","worker_id":"w2"}',
    '{"time":"2026-11-26T23:24:18+00:00","request_id":"b","method":"POST","uri":"/v1/ner?x=1","status":200,'
    '"request_time":0.300,"upstream_addr":"127.0.0.1:8101, 127.0.0.1:8102","upstream_status":"429, 200","worker_id":"w2"}',
    '{"time":"2026-11-26T23:24:18+00:00","request_id":"c","method":"POST","uri":"/predict","status":503,'
    '"request_time":0.000,"upstream_addr":"ner_workers","upstream_status":"502","worker_id":""}',
    '{"time":"2026-11-26T23:24:18+00:00","request_id":"d","method":"GET","uri":"/metrics","status":404,'
    '"request_time":0.000,"upstream_addr":"","upstream_status":"","worker_id":""}',
    '{"time":"2026-11-26T23:24:18+00:00","request_id":"e","method":"GET","uri":"/wp-login.php","status":404,'
    '"request_time":0.002,"upstream_addr":"127.0.0.1:8101","upstream_status":"404","worker_id":"w1"}',
    "not a request line",
]


@pytest.fixture(scope="module")
def mtail_metrics(tmp_path_factory) -> str:
    """The gateway program run once over ACCESS_LINES, its metrics in Prometheus' text format."""
    log = tmp_path_factory.mktemp("mtail") / "access.log"
    log.write_text("\n".join(ACCESS_LINES) + "\n")
    done = run(
        tool("mtail"),
        "--one_shot",
        "--one_shot_format",
        "prometheus",
        "--emit_prog_label=false",
        "--address",
        "127.0.0.1",
        "--port",
        "0",
        "--progs",
        str(MONITORING / "mtail"),
        "--logs",
        str(log),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    "series",
    [
        'gateway_http_requests_total{route="/v1/ner",status="200",upstream="127.0.0.1:8102"} 2',
        'gateway_http_requests_total{route="/predict",status="503",upstream="ner_workers"} 1',
        'gateway_http_requests_total{route="/metrics",status="404",upstream="none"} 1',
        'gateway_http_requests_total{route="other",status="404",upstream="127.0.0.1:8101"} 1',
    ],
    ids=["last upstream of a retried request", "no live worker", "answered by the gateway", "unknown path"],
)
def test_mtail_counts_requests_by_route_status_and_upstream(mtail_metrics, series):
    assert series in mtail_metrics.splitlines()


def test_mtail_puts_every_request_in_the_latency_buckets(mtail_metrics):
    lines = mtail_metrics.splitlines()
    assert 'gateway_http_request_duration_seconds_count{route="/v1/ner"} 2' in lines
    assert 'gateway_http_request_duration_seconds_bucket{route="/v1/ner",le="0.01"} 1' in lines
    assert 'gateway_http_request_duration_seconds_bucket{route="/v1/ner",le="+Inf"} 2' in lines
    # a request logged as 0.000 s still lands in the first bucket
    assert 'gateway_http_request_duration_seconds_bucket{route="/predict",le="0.005"} 1' in lines


def test_the_containers_configuration_from_the_environment_passes_promtool_check_config(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CONSUL_HTTP_ADDR": "consul:8500", "NER_WORKERS_WANTED": "3"}
    out = tmp_path / "prometheus.yml"
    done = subprocess.run(
        ["python3", str(MONITORING / "prometheus_conf.py"), "--out", str(out), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "vector(3)" in (tmp_path / "rules" / "wanted.yml").read_text()
    check = run(tool("promtool"), "check", "config", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
