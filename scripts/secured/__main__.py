"""Secured mode from the command line, for whoever brings up a secured Consul elsewhere (compose one-shots):

    python -m scripts.secured gossip-key --secrets DIR
    python -m scripts.secured init --consul 127.0.0.1:8500 --secrets DIR [--node NAME]
    python -m scripts.secured init --consul https://consul:8500 --ca-file CA.pem --secrets DIR

The gateway's rate-limit snippet has its own command: `python3 scripts/secured/ratelimit.py limits`.
Secrets go to 0600 files only; messages name the file and the token's AccessorID (its public
identifier). Both commands are idempotent: run again, they only create what is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.secured.acl_client import AclError, AclNotReady
from scripts.secured.acl_setup import ensure_acls
from scripts.secured.secretfiles import SecretStore, ensure_gossip_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.secured", description="Consul ACLs and gossip encryption for secured mode"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="bootstrap ACLs and write one token per role into --secrets")
    init.add_argument("--consul", default="127.0.0.1:8500", help="Consul HTTP address, host:port or https://host:port")
    init.add_argument(
        "--ca-file",
        type=Path,
        default=os.environ.get("CONSUL_CACERT") or None,
        help="CA certificate an https Consul must present a certificate of (default: CONSUL_CACERT)",
    )
    init.add_argument("--secrets", type=Path, required=True, help="directory for the token files")
    init.add_argument("--node", default=None, help="the agent token's node (default: any node, for several agents)")
    init.add_argument("--timeout", type=float, default=60.0)
    keygen = sub.add_parser("gossip-key", help="write SECRETS/consul-gossip.json with `consul keygen`")
    keygen.add_argument("--secrets", type=Path, required=True)
    keygen.add_argument(
        "--consul-bin",
        type=Path,
        default=None,
        help="consul binary for `consul keygen` (default: consul on PATH, else Python)",
    )
    args = parser.parse_args(argv)
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.command == "gossip-key":
            consul_bin = args.consul_bin or (Path(found) if (found := shutil.which("consul")) else None)
            say(f"gossip key in {ensure_gossip_key(SecretStore(args.secrets), consul_bin)}")
        else:
            setup = ensure_acls(
                args.consul,
                SecretStore(args.secrets),
                node=args.node,
                timeout=args.timeout,
                say=say,
                ca_file=args.ca_file,
            )
            say(f"acl: ready ({', '.join(setup.created) or 'nothing new'})")
    except (AclError, AclNotReady, TimeoutError, ValueError, subprocess.CalledProcessError) as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
