"""The gateway's HTTPS settings in local mode: what load_config accepts and what nginx is given."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.localcluster import REPO_ROOT
from scripts.localmode.config import load_config
from scripts.localmode.gateway import nginx_args, nginx_dir, nginx_program, tls_summary, write_nginx_conf, write_tls
from scripts.tls import ensure_ca, ensure_server_cert
from upstream_renderer.template import render


def snippet(config) -> Path:
    return nginx_dir(config) / "tls.d" / "gateway.conf"


def test_https_listens_beside_plain_http_by_default() -> None:
    config = load_config({})
    assert (config.tls, config.gateway_port, config.tls_port) == (True, 8080, 8443)
    assert config.gateway_tls_url == "https://127.0.0.1:8443"


def test_a_wildcard_listen_is_reached_as_localhost_and_left_out_of_the_names() -> None:
    config = load_config({"NER_GATEWAY_TLS_LISTEN": "0.0.0.0:9443"})
    assert config.gateway_tls_url == "https://localhost:9443"
    assert "0.0.0.0" not in config.tls_names


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(ValueError, match="set both or neither"):
        load_config({"NER_TLS_CERT": str(tmp_path / "cert.pem")})


def test_a_missing_operator_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(ValueError, match="no such certificate or key file"):
        load_config({"NER_TLS_CERT": str(tmp_path / "cert.pem"), "NER_TLS_KEY": str(tmp_path / "key.pem")})


def test_the_first_start_generates_a_ca_and_points_nginx_at_its_certificate(tmp_path: Path) -> None:
    config = replace(load_config({"NER_TLS_NAMES": "localhost,127.0.0.1"}), run_dir=tmp_path)
    cert = write_tls(config)
    assert cert is not None and cert.ca == tmp_path / "tls" / "ca.pem"
    text = snippet(config).read_text()
    assert "listen 127.0.0.1:8443 ssl http2;" in text
    assert f"ssl_certificate {tmp_path / 'tls' / 'gateway.pem'};" in text


def test_the_operators_files_are_used_as_they_are_and_no_ca_is_made(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "operator")
    files = ensure_server_cert(ca, tmp_path / "operator", "site", ["gateway.example"], [])
    environ = {"NER_TLS_CERT": str(files.chain), "NER_TLS_KEY": str(files.key)}
    config = replace(load_config(environ), run_dir=tmp_path / "run")
    cert = write_tls(config)
    assert cert is not None and cert.ca is None
    assert f"ssl_certificate {files.chain};" in snippet(config).read_text()
    assert not config.tls_dir.exists()


def test_tls_off_removes_the_listen_and_its_port(tmp_path: Path) -> None:
    config = replace(load_config({}), run_dir=tmp_path)
    write_tls(config)
    off = replace(config, tls=False)
    assert write_tls(off) is None
    assert not snippet(off).exists()
    assert nginx_program(off).ports == (8080,)


def test_the_filled_configuration_passes_nginx_t(tmp_path: Path) -> None:
    config = replace(load_config({}), run_dir=tmp_path)
    write_nginx_conf(config, secure=False)
    empty = render((REPO_ROOT / "nginx-template" / "upstream.ctmpl").read_text(), [], keys={})
    (nginx_dir(config) / "upstream.conf").write_text(empty)  # a cluster with no worker yet
    done = subprocess.run([config.nginx_bin, "-t", "-q", *nginx_args(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_up_and_status_line_names_the_https_url_and_the_ca_to_trust(tmp_path: Path) -> None:
    config = replace(load_config({}), run_dir=tmp_path)
    line = tls_summary(config)
    assert line is not None
    assert "https://127.0.0.1:8443" in line and f"--cacert {tmp_path / 'tls' / 'ca.pem'}" in line
    assert tls_summary(replace(config, tls=False)) is None
