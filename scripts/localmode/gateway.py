"""The gateway of the local cluster: nginx's configuration, its program, and the renderer's program.

The renderer (consul-template when it is on PATH, the project's renderer otherwise) keeps
PREFIX/upstream.conf in step with Consul and reloads nginx through the pid file nginx writes, so
its reloads reach whichever nginx master runs now, including one the supervisor just restarted.
The project's renderer is the package nginx-template/upstream_renderer, run as
`python -m upstream_renderer` with nginx-template on PYTHONPATH; it also fills nginx.conf.

HTTPS listens on its own port beside plain HTTP (PREFIX/tls.d/gateway.conf), with the operator's
certificate (NER_TLS_CERT, NER_TLS_KEY) or one that scripts/tls issues from a local CA under
RUN_DIR/tls. Rotation writes new files and reloads nginx: in-flight requests finish on the old ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.localmode.config import REPO_ROOT, ClusterConfig
from scripts.localmode.programs import Program
from scripts.secured.ratelimit import limits_snippet
from scripts.tls import CertFiles, ensure_ca, ensure_server_cert, split_names
from scripts.tls.nginx import write_listen_snippet
from scripts.tls.store import CA_CERT

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
    write_tls(config)


def write_limits(config: ClusterConfig, secure: bool) -> None:
    """PREFIX/limits.d/rate.conf, the per-client rate limit nginx.conf.tmpl includes (if any)."""
    snippet = limits_snippet(config.rate_limit(secure), "secure" if secure else "normal")
    path = nginx_dir(config) / "limits.d" / "rate.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    if snippet is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(snippet)


@dataclass(frozen=True)
class GatewayCert:
    """The certificate the HTTPS listen presents, and the CA clients trust (None: the operator's own files)."""

    files: CertFiles
    ca: Path | None


def gateway_cert(config: ClusterConfig, force: bool = False) -> GatewayCert | None:
    """The operator's files, else the local CA's certificate for tls_names (issued when due; force: now)."""
    if not config.tls:
        return None
    if config.tls_cert is not None and config.tls_key is not None:
        return GatewayCert(CertFiles(cert=config.tls_cert, key=config.tls_key, chain=config.tls_cert), None)
    ca = ensure_ca(config.tls_dir)
    dns_names, ips = split_names(config.tls_names)
    return GatewayCert(ensure_server_cert(ca, config.tls_dir, "gateway", dns_names, ips, force=force), ca.cert)


def write_tls(config: ClusterConfig, force: bool = False) -> GatewayCert | None:
    """PREFIX/tls.d/gateway.conf, the HTTPS listen nginx.conf.tmpl includes; removed when TLS is off."""
    snippet = nginx_dir(config) / "tls.d" / "gateway.conf"
    snippet.parent.mkdir(parents=True, exist_ok=True)
    cert = gateway_cert(config, force)
    if cert is None:
        snippet.unlink(missing_ok=True)
        return None
    # The certificate alone (the operator's file: with its intermediates): clients hold the root already.
    write_listen_snippet(snippet, f"{config.tls_host}:{config.tls_port}", cert.files.cert, cert.files.key)
    return cert


def rotate_cert(config: ClusterConfig, nginx_running: bool) -> GatewayCert:
    """A new certificate (or the operator's replaced files) live with no failed request: new files, then a reload."""
    cert = write_tls(config, force=True)
    if cert is None:
        raise RuntimeError("HTTPS is off (NER_GATEWAY_TLS=0): no certificate to rotate")
    if nginx_running:
        reload_nginx(config)
    return cert


def tls_summary(config: ClusterConfig) -> str | None:
    """The HTTPS line of `make up` and `make status`: the URL and what a client must trust."""
    if not config.tls:
        return None
    if config.tls_cert is not None:
        return f"https:     {config.gateway_tls_url}  (certificate from NER_TLS_CERT={config.tls_cert})"
    ca = config.tls_dir / CA_CERT
    return f"https:     {config.gateway_tls_url}  (trust the CA certificate {ca}: curl --cacert {ca} ...)"


def reload_nginx(config: ClusterConfig) -> None:
    """Test the configuration (certificate and key included), then make the running master load it."""
    for flags in (["-t", "-q"], ["-s", "reload"]):
        done = subprocess.run(
            [config.nginx_bin, *flags, *nginx_args(config)], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"nginx {' '.join(flags)} failed: {(done.stdout + done.stderr).strip()[-2000:]}")


def nginx_program(config: ClusterConfig) -> Program:
    """nginx in the foreground (daemon off); SIGQUIT lets in-flight requests finish."""
    return Program(
        name="nginx",
        argv=[config.nginx_bin, *nginx_args(config)],
        priority=NGINX_PRIORITY,
        stop_signal="QUIT",
        stop_wait_seconds=10,
        ports=(config.gateway_port, *((config.tls_port,) if config.tls else ())),
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
