"""`python -m scripts.tls`: issue, rotate and inspect certificates, and write the gateway's TLS snippet.

    python -m scripts.tls ensure --dir DIR --name gateway --names localhost,127.0.0.1,::1 [--client-auth]
    python -m scripts.tls rotate --dir DIR --name gateway --names ...     # a new certificate, same CA
    python -m scripts.tls show DIR/gateway.pem [--field sha256]          # names, serial, SHA-256, expiry
    python -m scripts.tls nginx-snippet --listen 0.0.0.0:8443 --cert C --key K --out FILE

ensure and rotate print the files as KEY=PATH lines (ca, cert, key, chain) and say on stderr
whether a certificate was issued. --ca-dir keeps the CA apart from the certificate (default: DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from scripts.tls import nginx, store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.tls", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("ensure", "issue only what is missing or due"), ("rotate", "issue a new certificate")):
        issue = sub.add_parser(command, help=text)
        issue.add_argument("--dir", type=Path, required=True, help="where the certificate files live (0700)")
        issue.add_argument("--ca-dir", type=Path, help="where the CA lives (default: --dir)")
        issue.add_argument("--name", required=True, help="file name stem and common name, e.g. gateway")
        issue.add_argument("--names", required=True, help="comma-separated DNS names and IP addresses")
        issue.add_argument("--client-auth", action="store_true", help="also usable as a TLS client certificate")
        issue.add_argument("--days", type=int, default=store.CERT_DAYS)
        issue.add_argument("--renew-within", type=int, default=store.RENEW_WITHIN_DAYS, help="days before expiry")
    show = sub.add_parser("show", help="a certificate's names, serial, fingerprint and expiry as JSON")
    show.add_argument("cert", type=Path)
    show.add_argument("--field", help="print only this one (e.g. sha256, serial, not_after)")
    snippet = sub.add_parser("nginx-snippet", help="the gateway's TLS listen, for its server block")
    snippet.add_argument("--listen", required=True)
    snippet.add_argument("--cert", type=Path, required=True, help="certificate chain (PEM)")
    snippet.add_argument("--key", type=Path, required=True)
    snippet.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            shown = store.describe(args.cert)
            print(json.dumps(shown, indent=2) if args.field is None else shown[args.field])
        elif args.command == "nginx-snippet":
            nginx.write_listen_snippet(args.out, args.listen, args.cert.resolve(), args.key.resolve())
        else:
            issue_files(args, force=args.command == "rotate")
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def issue_files(args: argparse.Namespace, force: bool) -> None:
    dns_names, ips = store.split_names(args.names.split(","))
    ca = store.ensure_ca(args.ca_dir or args.dir)
    before = _fingerprint_or_none(args.dir / f"{args.name}.pem")
    files = store.ensure_server_cert(
        ca, args.dir, args.name, dns_names, ips, args.client_auth, args.days, args.renew_within, force=force
    )
    after = files.fingerprint()
    what = "kept" if before == after else ("issued" if before is None else "re-issued")
    print(f"{args.name}: certificate {what}, sha256 {after}, CA {ca.cert}", file=sys.stderr)
    for key, path in (("ca", ca.cert), ("cert", files.cert), ("key", files.key), ("chain", files.chain)):
        print(f"{key}={path}")


def _fingerprint_or_none(path: Path) -> str | None:
    try:
        return store.describe(path)["sha256"]  # type: ignore[return-value]
    except (OSError, ValueError):
        return None
