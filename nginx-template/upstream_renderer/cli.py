"""The command line: the renderer's flags, its start and stop lines, and the fill-nginx-conf subcommand."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Sequence

import upstream_renderer
from upstream_renderer.holddown import DEFAULT_HOLD_DOWN, HOLD_DOWN_ENV
from upstream_renderer.logs import log, setup_logging
from upstream_renderer.nginx import NginxControl, fill_nginx_conf
from upstream_renderer.recovery import DEFAULT_RECOVERY_GRACE
from upstream_renderer.runner import Runner
from upstream_renderer.signals import Shutdown
from upstream_renderer.template import Template, TemplateError, render
from upstream_renderer.watch import (
    DEFAULT_KEY_POLL,
    DEFAULT_KV_PREFIX,
    DEFAULT_MAX_STALE,
    DEFAULT_WAIT,
    Consul,
    ConsulTls,
    consul_base,
    parse_duration,
    parse_wait,
)

PROG = "python3 -m upstream_renderer"
FILL_COMMAND = "fill-nginx-conf"
STARTUP_MESSAGE = "renderer: project renderer (consul-template not available)"
HERE = Path(__file__).resolve().parents[1]  # nginx-template/, or the image's /etc/ner-gateway


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=upstream_renderer.__doc__.split("\n\n")[0],
        epilog=f"{PROG} {FILL_COMMAND} --help: fill nginx.conf.tmpl",
    )
    parser.add_argument(
        "--consul",
        default=os.environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500"),
        help="Consul HTTP address, host:port or https://host:port (CONSUL_HTTP_ADDR; CONSUL_HTTP_SSL=true: "
        "https for host:port); token from CONSUL_HTTP_TOKEN",
    )
    parser.add_argument(
        "--ca-file",
        default=os.environ.get("CONSUL_CACERT", ""),
        help="CA certificate an https Consul's certificate must chain to (CONSUL_CACERT; default: system CAs)",
    )
    parser.add_argument("--client-cert", default=os.environ.get("CONSUL_CLIENT_CERT", ""), help="(CONSUL_CLIENT_CERT)")
    parser.add_argument("--client-key", default=os.environ.get("CONSUL_CLIENT_KEY", ""), help="(CONSUL_CLIENT_KEY)")
    parser.add_argument("--template", type=Path, default=HERE / "upstream.ctmpl")
    parser.add_argument("--out", type=Path, required=True, help="rendered upstream file")
    parser.add_argument("--service", help="Consul service to watch (default: the template's)")
    parser.add_argument(
        "--wait",
        type=parse_wait,
        default=DEFAULT_WAIT,
        help="quiescence MIN:MAX like consul-template's wait (default %(default)s)",
    )
    parser.add_argument(
        "--hold-down",
        type=parse_duration,
        default=os.environ.get(HOLD_DOWN_ENV, DEFAULT_HOLD_DOWN),
        help="a change of weights or warning states only (same server members) reloads "
        "nginx at most once per this interval; joins and leaves are never held; "
        f"0 = every change at once ({HOLD_DOWN_ENV}, default %(default)s)",
    )
    parser.add_argument(
        "--kv-prefix",
        default=DEFAULT_KV_PREFIX,
        help="the KV keys the template may read (key, keyOrDefault) are read under this prefix "
        "(default %(default)s: the rollout's shares)",
    )
    parser.add_argument(
        "--key-poll",
        type=parse_duration,
        default=DEFAULT_KEY_POLL,
        help="when the template reads KV keys, read them again at least this often (default %(default)ss)",
    )
    parser.add_argument("--once", action="store_true", help="render once and exit")
    parser.add_argument(
        "--max-stale",
        type=parse_duration,
        default=DEFAULT_MAX_STALE,
        help="accept an answer from a server that heard from the Raft leader at "
        "most this long ago; 0 = leader only (default %(default)ss)",
    )
    parser.add_argument(
        "--recovery-grace",
        type=float,
        default=DEFAULT_RECOVERY_GRACE,
        help="seconds to keep routing to instances Consul forgot after an outage "
        "or a state loss, while they register again (default %(default)s)",
    )
    parser.add_argument("--nginx-bin", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--nginx-prefix", help="nginx -p DIR: test with nginx -t, reload with -s reload")
    parser.add_argument("--nginx-conf", help="nginx -c CONF (default DIR/nginx.conf)")
    parser.add_argument("--check-cmd", help="shell command testing the config (replaces nginx -t)")
    parser.add_argument("--reload-cmd", help="shell command reloading nginx (replaces -s reload)")
    parser.add_argument("--no-reload", action="store_true", help="write and test only (before nginx is started)")
    parser.add_argument("--log-level", default=os.environ.get("NER_LOG_LEVEL", "INFO"))
    return parser


def build_fill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {FILL_COMMAND}", description="Write nginx.conf from nginx.conf.tmpl for one prefix and address."
    )
    parser.add_argument("--conf-template", type=Path, default=HERE / "nginx.conf.tmpl")
    parser.add_argument("--prefix", required=True, help="nginx -p DIR: pid file, temp dirs and logs live there")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="the gateway's address (default %(default)s)")
    parser.add_argument("--upstream-conf", type=Path, required=True, help="the rendered upstream nginx includes")
    parser.add_argument("--out", type=Path, help="where nginx.conf goes (default PREFIX/nginx.conf)")
    parser.add_argument(
        "--empty-upstream",
        type=Path,
        metavar="TEMPLATE",
        help="also write to --upstream-conf what TEMPLATE renders with no instance, "
        "so nginx can start (answering a JSON 503) before the first render",
    )
    return parser


def ssl_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """CONSUL_HTTP_SSL as Consul's own clients read it: https for an address without a scheme."""
    return environ.get("CONSUL_HTTP_SSL", "").strip().lower() in ("1", "t", "true", "yes", "on")


def startup_message() -> str:
    found = shutil.which("consul-template")
    return STARTUP_MESSAGE if not found else f"renderer: project renderer (consul-template at {found} not used)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [FILL_COMMAND]:
        return fill_main(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        template = Template.parse(args.template.read_text(encoding="utf-8"))
        service = args.service or template.service_name()
    except (OSError, TemplateError) as exc:
        log.error("cannot use template", extra={"fields": {"template": str(args.template), "error": str(exc)}})
        return 2
    wait_min, wait_max = args.wait
    log.info(
        startup_message(),
        extra={
            "fields": {
                "consul": consul_base(args.consul, ssl_requested()),
                "ca_file": args.ca_file,
                "service": service,
                "template": str(args.template),
                "out": str(args.out),
                "wait": f"{wait_min}s:{wait_max}s",
                "hold_down_s": args.hold_down,
                "kv_prefix": args.kv_prefix if template.uses_keys() else None,
                "once": args.once,
            }
        },
    )
    nginx = NginxControl.from_options(
        args.nginx_bin,
        prefix=args.nginx_prefix,
        conf=args.nginx_conf,
        check_cmd=args.check_cmd,
        reload_cmd=args.reload_cmd,
        reload=not args.no_reload,
    )
    tls = ConsulTls(args.ca_file, args.client_cert, args.client_key)
    consul = Consul(
        consul_base(args.consul, ssl_requested()), os.environ.get("CONSUL_HTTP_TOKEN", ""), args.max_stale, tls
    )
    runner = Runner(
        template,
        service,
        consul,
        args.out,
        nginx,
        args.wait,
        args.recovery_grace,
        args.hold_down,
        keys=lambda: consul.kv_tree(args.kv_prefix),
        key_poll=args.key_poll,
    )
    runner.signals.install()
    try:
        return runner.run_once() if args.once else runner.run_forever()
    except Shutdown:
        return 0
    finally:
        log.info("renderer stopped")


def fill_main(argv: Sequence[str]) -> int:
    """nginx.conf for a prefix, and with --empty-upstream the upstream nginx can start on."""
    args = build_fill_parser().parse_args(argv)
    try:
        conf = fill_nginx_conf(
            args.conf_template.read_text(encoding="utf-8"), args.prefix, str(args.upstream_conf), args.listen
        )
        (args.out or Path(args.prefix, "nginx.conf")).write_text(conf, encoding="utf-8")
        if args.empty_upstream is not None:
            args.upstream_conf.write_text(render(args.empty_upstream.read_text(encoding="utf-8"), []), encoding="utf-8")
    except (OSError, KeyError, ValueError) as exc:
        print(f"{FILL_COMMAND}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0
