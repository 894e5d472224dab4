"""The gateway of the local cluster: nginx's configuration, its program, and the renderer's program.

The renderer (consul-template when it is on PATH, the project's renderer otherwise) keeps
PREFIX/upstream.conf in step with Consul and reloads nginx through the pid file nginx writes, so
its reloads reach whichever nginx master runs now, including one the supervisor just restarted.
The project's renderer is the package nginx-template/upstream_renderer, run as
`python -m upstream_renderer` with nginx-template on PYTHONPATH; it also fills nginx.conf.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from scripts.localmode.config import REPO_ROOT, ClusterConfig
from scripts.localmode.programs import Program
from scripts.secured.ratelimit import limits_snippet

NGINX_PRIORITY = 20
RENDERER_PRIORITY = 30
NGINX_TEMPLATE_DIR = REPO_ROOT / "nginx-template"


def nginx_dir(config: ClusterConfig) -> Path:
    return config.run_dir / "nginx"


def nginx_args(config: ClusterConfig) -> list[str]:
    prefix = nginx_dir(config)
    return ["-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]


def write_nginx_conf(config: ClusterConfig, secure: bool) -> None:
    """Fill nginx.conf.tmpl for this run directory and gateway port, with the mode's rate limit."""
    prefix = nginx_dir(config)
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(config.python),
            "-m",
            "upstream_renderer",
            "fill-nginx-conf",
            "--conf-template",
            str(NGINX_TEMPLATE_DIR / "nginx.conf.tmpl"),
            "--prefix",
            str(prefix),
            "--upstream-conf",
            str(prefix / "upstream.conf"),
            "--listen",
            f"{config.gateway_host}:{config.gateway_port}",
        ],
        check=True,
        cwd=REPO_ROOT,
        timeout=30,
        env={**os.environ, **renderer_env()},
    )
    write_limits(config, secure)


def write_limits(config: ClusterConfig, secure: bool) -> None:
    """PREFIX/limits.d/rate.conf, the per-client rate limit nginx.conf.tmpl includes (if any)."""
    snippet = limits_snippet(config.rate_limit(secure), "secure" if secure else "normal")
    path = nginx_dir(config) / "limits.d" / "rate.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    if snippet is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(snippet)


def nginx_program(config: ClusterConfig) -> Program:
    """nginx in the foreground (daemon off); SIGQUIT lets in-flight requests finish."""
    return Program(
        name="nginx",
        argv=[config.nginx_bin, *nginx_args(config)],
        priority=NGINX_PRIORITY,
        stop_signal="QUIT",
        stop_wait_seconds=10,
        ports=(config.gateway_port,),
        inherit_listeners=True,
    )


def renderer_argv(config: ClusterConfig, once: bool = False) -> tuple[str, list[str]]:
    """consul-template when it is on PATH, our renderer otherwise; the same template either way.

    once=True renders a single time without reloading: nginx is not running yet.
    """
    prefix = nginx_dir(config)
    template = REPO_ROOT / "nginx-template" / "upstream.ctmpl"
    out = prefix / "upstream.conf"
    consul_template = shutil.which("consul-template")
    if consul_template:
        reload_cmd = f"{REPO_ROOT / 'nginx-template' / 'reload-nginx.sh'} {prefix} {prefix / 'nginx.conf'} {out}"
        spec = f"{template}:{out}" if once else f"{template}:{out}:{reload_cmd}"
        argv = [
            consul_template,
            f"-consul-addr=127.0.0.1:{config.consul_http_port}",
            "-wait=200ms:2s",
            f"-template={spec}",
        ]
        return "consul-template", argv + (["-once"] if once else [])
    argv = [
        str(config.python),
        "-m",
        "upstream_renderer",
        "--consul",
        f"127.0.0.1:{config.consul_http_port}",
        "--template",
        str(template),
        "--out",
        str(out),
        "--nginx-bin",
        config.nginx_bin,
        "--nginx-prefix",
        str(prefix),
        "--nginx-conf",
        str(prefix / "nginx.conf"),
    ]
    return "project renderer (consul-template not on PATH)", argv + (["--once", "--no-reload"] if once else [])


def render_once(config: ClusterConfig, env: dict[str, str]) -> None:
    """The first upstream.conf, before nginx starts (nginx needs the file to exist)."""
    _, argv = renderer_argv(config, once=True)
    subprocess.run(argv, check=True, cwd=REPO_ROOT, capture_output=True, timeout=30, env={**env, **renderer_env()})


def renderer_program(config: ClusterConfig, token_file: Path | None) -> Program:
    return Program(
        name="renderer",
        argv=renderer_argv(config)[1],
        priority=RENDERER_PRIORITY,
        stop_signal="TERM",
        stop_wait_seconds=10,
        env=renderer_env(),
        token_file=token_file,
    )


def renderer_env() -> dict[str, str]:
    """PYTHONPATH for `python -m upstream_renderer` (in nginx-template/) and the launcher (the repository)."""
    return {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(NGINX_TEMPLATE_DIR)])}
