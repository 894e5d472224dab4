"""Operate the local cluster: `python -m scripts.cluster up|down|scale N|status|rotate-cert`."""

from __future__ import annotations

import argparse
import os
import sys

from scripts.localcluster import LocalCluster, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start what is missing and wait until the gateway serves")
    up.add_argument("--workers", type=int, default=2)
    sub.add_parser("down", help="stop everything the cluster started")
    scale = sub.add_parser("scale", help="grow or shrink the running cluster")
    scale.add_argument("workers", type=int)
    sub.add_parser("status", help="each program as the supervisor sees it, each worker as Consul does")
    sub.add_parser("rotate-cert", help="a new gateway certificate (or the operator's new files), live after a reload")
    args = parser.parse_args(argv)

    try:
        cluster = LocalCluster(load_config())
        if args.command == "up":
            cluster.up(args.workers)
        elif args.command == "down":
            cluster.down()
        elif args.command == "scale":
            cluster.scale(args.workers)
        elif args.command == "rotate-cert":
            cluster.rotate_cert()
        else:
            cluster.print_status()
        sys.stdout.flush()  # here, so a reader that went away is noticed inside the handler below
    except (RuntimeError, TimeoutError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`make status | head`): stop writing, quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
