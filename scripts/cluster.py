"""Operate the local cluster: `python -m scripts.cluster up|down|scale N|status|rotate-cert|rollout|promote|rollback`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from registrar.kv import RolloutError, parse_share
from registrar.rollout import DEFAULT_MAX_ERROR_RATIO
from scripts.localcluster import LocalCluster, load_config  # noqa: E402
from scripts.localmode.versions import LocalRollout
from scripts.localmode.workers import WorkerModel

EXIT_ROLLED_BACK = 3


def run_rollout(cluster: LocalCluster, args: argparse.Namespace) -> int:
    """rollout, promote, rollback; a rollout that rolled itself back exits 3."""
    local = LocalRollout(cluster, cluster.say)
    if args.command == "promote":
        local.promote(args.ref)
    elif args.command == "rollback":
        local.rollback(args.ref)
    else:
        model = WorkerModel(args.model_dir.expanduser().resolve(), args.name, args.version)
        result = local.rollout(model, args.canary, args.workers, args.watch, args.max_error_ratio)
        local.registrar_rollout().say(versions_table(local))
        if result is not None and result.rolled_back:
            return EXIT_ROLLED_BACK
    return 0


def versions_table(local: LocalRollout) -> str:
    from registrar.versions import by_version, counters_by_instance, format_table, version_rows

    rollout = local.registrar_rollout()
    instances = rollout.instances()
    return format_table(
        version_rows(instances, rollout.store.shares(), by_version(instances, counters_by_instance(instances)))
    )


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
    rollout = sub.add_parser("rollout", help="workers of another model beside the others, a canary share, a watch")
    rollout.add_argument("model_dir", type=Path, help="the new model's directory")
    rollout.add_argument("--canary", type=parse_share, default=10.0, metavar="PERCENT")
    rollout.add_argument("--workers", type=int, default=1, help="workers of the new model (default 1)")
    rollout.add_argument("--name", help="model name it registers (default: the directory's name)")
    rollout.add_argument("--version", help="model version (default: the weights' checksum)")
    rollout.add_argument("--watch", type=float, default=60.0, metavar="SECONDS", help="0: no automatic rollback")
    rollout.add_argument("--max-error-ratio", type=float, default=DEFAULT_MAX_ERROR_RATIO, metavar="RATIO")
    for name in ("promote", "rollback"):
        sub.add_parser(name, help=f"{name} the canary (or --ref name@version)").add_argument("--ref")
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
        elif args.command in ("rollout", "promote", "rollback"):
            return run_rollout(cluster, args)
        else:
            cluster.print_status()
        sys.stdout.flush()  # here, so a reader that went away is noticed inside the handler below
    except (RuntimeError, TimeoutError, ValueError, RolloutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`make status | head`): stop writing, quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
