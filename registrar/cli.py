"""Operator commands: see the worker instances in Consul, drain, resume, deregister or register one;
roll a model version out (registrar/rollout_cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, replace
from typing import Any, Mapping, Sequence

from registrar import rollout_cli
from registrar.client import build_client
from registrar.config import ConfigError, RegistrarConfig, load_config
from registrar.inventory import Instance, agent_for, find_instance, list_instances
from registrar.logs import ensure_logging
from registrar.registration import Registrar
from registrar.workerstats import DEFAULT_TIMEOUT, UNKNOWN, WorkerStats, scrape_all

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m registrar",
        description="Manage ner-worker instances in Consul. Reads CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN "
        "and the NER_* registrar variables (docs/ARCHITECTURE.md).",
    )
    parser.add_argument(
        "--consul",
        metavar="ADDR",
        help="Consul agent address, host:port or http(s)://host:port (default: CONSUL_HTTP_ADDR or 127.0.0.1:8500)",
    )
    parser.add_argument("--service", metavar="NAME", help="service name (default: NER_SERVICE_NAME or ner-worker)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="table of instances: ID, address:port, health, model, in-flight and served "
        "requests (from each worker's /metrics, `?` when it does not answer), node",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per instance instead")
    listing.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for each worker's /metrics (default {DEFAULT_TIMEOUT})",
    )

    drain = commands.add_parser("drain", help="put an instance into maintenance so the gateway drops it")
    drain.add_argument("id", help="service instance ID (see `list`)")
    drain.add_argument("--reason", default="drained by operator", help="shown in Consul and its UI")
    drain.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS until Consul no longer lists it as passing",
    )

    resume = commands.add_parser("resume", help="take an instance out of maintenance")
    resume.add_argument("id", help="service instance ID")

    dereg = commands.add_parser("deregister", help="remove an instance from its agent")
    dereg.add_argument("id", help="service instance ID")

    register = commands.add_parser(
        "register", help="register a running worker that did not register itself; prints its ID"
    )
    register.add_argument("--port", type=int, required=True, help="port the worker listens on")
    register.add_argument(
        "--address", help="address other hosts reach it on (default: NER_ADVERTISE_ADDRESS or the route to Consul)"
    )
    register.add_argument("--id", dest="service_id", help="instance ID (default: a new unique one)")
    rollout_cli.add_commands(commands)
    return parser


def print_table(instances: Sequence[Instance], stats: Mapping[str, WorkerStats] | None = None) -> None:
    header = ("ID", "ADDRESS", "STATUS", "MODEL", "IN-FLIGHT", "SERVED", "NODE")
    stats = stats or {}
    rows = [(i.id, i.endpoint, i.status, i.model_label, *stats.get(i.id, UNKNOWN).cells(), i.node) for i in instances]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def worker_stats(instances: Sequence[Instance], timeout: float = DEFAULT_TIMEOUT) -> dict[str, WorkerStats]:
    """Each instance's live load from its own /metrics, all asked at once (ID -> stats)."""
    return scrape_all({i.id: i.endpoint for i in instances}, timeout)


def print_instances(instances: Sequence[Instance], timeout: float = DEFAULT_TIMEOUT) -> None:
    """The operator's table, as `list` and `make status` show it."""
    print_table(instances, worker_stats(instances, timeout))


def _locate(config: RegistrarConfig, client: Any, service_id: str) -> tuple[Instance, Any] | None:
    instance = find_instance(client, config.service_name, service_id)
    if instance is None:
        print(f"no {config.service_name} instance with ID {service_id}", file=sys.stderr)
        return None
    return instance, agent_for(config, client, instance)


def cmd_list(config: RegistrarConfig, client: Any, args: argparse.Namespace) -> int:
    instances = list_instances(client, config.service_name)
    if args.json:
        stats = worker_stats(instances, args.timeout)
        for instance in instances:
            print(json.dumps({**asdict(instance), **asdict(stats[instance.id])}))
    elif instances:
        print_instances(instances, args.timeout)
    else:
        print(f"no {config.service_name} instances registered")
    return EXIT_OK


def cmd_maintenance(
    config: RegistrarConfig, client: Any, service_id: str, enable: bool, reason: str, wait: float = 0.0
) -> int:
    located = _locate(config, client, service_id)
    if located is None:
        return EXIT_FAILED
    instance, agent = located
    registrar = Registrar(config, instance.id, client=agent, pid=0)
    if not registrar.set_maintenance(enable, reason):
        print(f"could not change maintenance of {service_id} on node {instance.node}", file=sys.stderr)
        return EXIT_FAILED
    if enable and wait > 0:
        took = registrar.wait_until_not_passing(wait)
        if took is None:
            print(f"{service_id} still passing after {wait}s", file=sys.stderr)
            return EXIT_FAILED
    print(f"{service_id}: maintenance {'on' if enable else 'off'}")
    return EXIT_OK


def cmd_deregister(config: RegistrarConfig, client: Any, args: argparse.Namespace) -> int:
    located = _locate(config, client, args.id)
    if located is None:
        return EXIT_FAILED
    instance, agent = located
    try:
        removed = agent.agent.service.deregister(instance.id)
    except Exception as error:  # noqa: BLE001 - the holding agent is gone: clean the catalog
        print(
            f"agent on {instance.node} unreachable ({type(error).__name__}); removing from the catalog", file=sys.stderr
        )
        removed = client.catalog.deregister(instance.node, service_id=instance.id)
    if not removed:
        print(f"could not deregister {args.id}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.id}: deregistered")
    return EXIT_OK


def cmd_register(config: RegistrarConfig, client: Any, args: argparse.Namespace) -> int:
    registrar = Registrar(config, args.service_id, client=client, pid=0)
    if not registrar.register(args.port, args.address):
        print("registration failed (see the log above)", file=sys.stderr)
        return EXIT_FAILED
    print(registrar.instance_id)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ensure_logging(logging.WARNING)
    environ = dict(os.environ)
    if args.consul:
        environ["CONSUL_HTTP_ADDR"] = args.consul
    try:
        config = load_config(environ)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.service:
        config = replace(config, service_name=args.service)
    client = build_client(config)
    try:
        if args.command == "list":
            return cmd_list(config, client, args)
        if args.command == "drain":
            return cmd_maintenance(config, client, args.id, True, args.reason, args.wait)
        if args.command == "resume":
            return cmd_maintenance(config, client, args.id, False, "resumed by operator")
        if args.command == "deregister":
            return cmd_deregister(config, client, args)
        if args.command in rollout_cli.COMMANDS:
            return rollout_cli.run(config, client, args)
        return cmd_register(config, client, args)
    except Exception as error:  # noqa: BLE001 - an operator wants one line, not a traceback
        print(f"{args.command} failed against {config.consul_url}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
