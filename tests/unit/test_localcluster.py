"""Local-mode settings and the choice between consul-template and the project renderer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.localmode.config import REPO_ROOT, ClusterConfig, load_config
from scripts.localmode.gateway import NGINX_TEMPLATE_DIR, renderer_argv, renderer_program


@pytest.fixture
def config(tmp_path: Path) -> ClusterConfig:
    return load_config({"NER_RUN_DIR": str(tmp_path / "run")})


def fake_consul_template(directory: Path) -> None:
    binary = directory / "consul-template"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)


def test_defaults_are_the_documented_ports():
    config = load_config({})
    assert (config.gateway_host, config.gateway_port, config.consul_http_port) == ("127.0.0.1", 8080, 8500)


def test_gateway_listen_address_is_configurable():
    config = load_config({"NER_GATEWAY_LISTEN": "0.0.0.0:9090", "NER_CONSUL_HTTP_PORT": "18500"})
    assert (config.gateway_host, config.gateway_port, config.consul_http_port) == ("0.0.0.0", 9090, 18500)


def test_without_consul_template_the_project_renderer_keeps_the_upstream(config, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    kind, argv = renderer_argv(config)
    assert kind.startswith("project renderer")
    assert argv[1:3] == ["-m", "upstream_renderer"]


def test_the_renderer_program_finds_the_package_in_nginx_template_and_its_launcher_in_the_repository(config):
    path = renderer_program(config, token_file=None).env["PYTHONPATH"].split(os.pathsep)
    assert str(NGINX_TEMPLATE_DIR) in path and str(REPO_ROOT) in path


def test_consul_template_on_path_is_preferred_and_reloads_through_the_checking_script(config, monkeypatch, tmp_path):
    fake_consul_template(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    kind, argv = renderer_argv(config)
    assert kind == "consul-template"
    template_arg = next(a for a in argv if a.startswith("-template="))
    assert template_arg.count(":") == 2 and "reload-nginx.sh" in template_arg
    assert "upstream.ctmpl" in template_arg


def test_rendering_once_before_nginx_runs_never_reloads(config, monkeypatch, tmp_path):
    fake_consul_template(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _, argv = renderer_argv(config, once=True)
    assert "-once" in argv and not any("reload-nginx.sh" in a for a in argv)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    _, argv = renderer_argv(config, once=True)
    assert "--once" in argv and "--no-reload" in argv
