"""The rollout subcommands of `python -m registrar`: versions, rollout, promote, rollback."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from registrar.config import RegistrarConfig
from registrar.kv import RolloutError, parse_share
from registrar.rollout import (
    DEFAULT_MAX_ERROR_RATIO,
    DEFAULT_MIN_REQUESTS,
    DEFAULT_WATCH_SECONDS,
    Rollout,
)
from registrar.versions import by_version, counters_by_instance, format_table, version_rows

COMMANDS = ("versions", "rollout", "promote", "rollback")
EXIT_OK, EXIT_FAILED, EXIT_ROLLED_BACK = 0, 1, 3


def add_commands(commands: Any) -> None:
    """The subcommands' parsers, beside the instance commands of registrar/cli.py."""
    versions = commands.add_parser(
        "versions", help="model versions side by side: share, passing instances, requests, 5xx, p95 (workers' /metrics)"
    )
    versions.add_argument("--json", action="store_true", help="one JSON object per version instead")

    rollout = commands.add_parser(
        "rollout", help="give a live version (name@version) a canary share, then watch it and roll back on errors"
    )
    rollout.add_argument("version", help="name@version, as the answers' model field names it")
    rollout.add_argument("--canary", type=parse_share, default=10.0, metavar="PERCENT", help="its share (default 10)")
    rollout.add_argument(
        "--watch",
        type=float,
        default=DEFAULT_WATCH_SECONDS,
        metavar="SECONDS",
        help=f"compare its 5xx ratio with the bound this long (default {DEFAULT_WATCH_SECONDS:g}; 0: no watch)",
    )
    rollout.add_argument(
        "--max-error-ratio",
        type=float,
        default=DEFAULT_MAX_ERROR_RATIO,
        metavar="RATIO",
        help=f"roll back by itself above this share of 5xx answers (default {DEFAULT_MAX_ERROR_RATIO:g})",
    )
    rollout.add_argument(
        "--min-requests",
        type=int,
        default=DEFAULT_MIN_REQUESTS,
        metavar="N",
        help=f"judge the ratio once the canary answered this many requests (default {DEFAULT_MIN_REQUESTS})",
    )
    for name, what in (
        ("promote", "send a version every request, then drain the other versions' instances"),
        ("rollback", "send a version no request, then drain its instances"),
    ):
        command = commands.add_parser(name, help=f"{what} (default: the canary)")
        command.add_argument("version", nargs="?", help="name@version (default: ner/rollout/canary)")
        command.add_argument(
            "--no-drain", action="store_true", help="leave the instances in service (the caller stops them)"
        )


def run(config: RegistrarConfig, client: Any, args: argparse.Namespace) -> int:
    rollout = Rollout(config, client)
    try:
        if args.command == "versions":
            return _versions(rollout, args.json)
        if args.command == "rollout":
            rollout.canary(args.version, args.canary)
            if args.watch <= 0:
                return EXIT_OK
            result = rollout.watch(args.version, args.watch, args.max_error_ratio, args.min_requests)
            if result.rolled_back:
                rollout.drain_version(args.version)
                return EXIT_ROLLED_BACK
            return EXIT_OK
        if args.command == "promote":
            ref = rollout.promote(args.version)
            if not args.no_drain:
                rollout.drain_others(keep=ref)
            return EXIT_OK
        ref = rollout.rollback(args.version)
        if not args.no_drain:
            rollout.drain_version(ref)
        return EXIT_OK
    except RolloutError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED


def _versions(rollout: Rollout, as_json: bool) -> int:
    instances = rollout.instances()
    rows = version_rows(instances, rollout.store.shares(), by_version(instances, counters_by_instance(instances)))
    if as_json:
        for row in rows:
            c = row.counters
            p95 = None if c is None else c.quantile(0.95)
            print(
                json.dumps(
                    {
                        "version": row.ref,
                        "share": row.share,
                        "instances": row.instances,
                        "passing": row.passing,
                        "requests": None if c is None else c.requests,
                        "errors": None if c is None else c.errors,
                        "p95_ms": None if p95 is None else round(1000 * p95, 1),
                    }
                )
            )
    else:
        print(format_table(rows) if rows else "no versions registered")
    return EXIT_OK
