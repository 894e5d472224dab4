"""What `make status` prints: the supervisor's view of every program beside Consul's view of the workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scripts.localmode.config import SERVICE_NAME
from scripts.localmode.programs import starts_file

if TYPE_CHECKING:
    from scripts.localcluster import LocalCluster


def restarts(cluster: "LocalCluster", name: str) -> int:
    """Starts after the first, as the program's launcher recorded them."""
    try:
        starts = len(starts_file(cluster.config.run_dir, name).read_text().splitlines())
    except FileNotFoundError:
        return 0
    return max(0, starts - 1)


def uptime(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_status(cluster: "LocalCluster") -> None:
    """Programs (state, pid, uptime, restarts), then every worker as Consul sees it and its load."""
    from registrar.cli import print_instances
    from registrar.client import build_client
    from registrar.config import load_config as registrar_config
    from registrar.inventory import list_instances

    supervisor = cluster.supervisor
    states = supervisor.states()
    if not states:
        print(f"supervisord: not running for {cluster.config.run_dir} (start the cluster with `make up`)")
        return
    print(f"{'program':<10} {'state':<9} {'pid':>7} {'uptime':>9} {'restarts':>8}  port")
    for name, state in sorted(states.items(), key=lambda kv: (kv[0].startswith("worker-"), len(kv[0]), kv[0])):
        pid = str(state.pid) if state.pid else "-"
        port = cluster.port_of(name) or ""
        print(
            f"{name:<10} {state.state:<9} {pid:>7} {uptime(state.uptime_seconds):>9} "
            f"{restarts(cluster, name):>8}  {port}"
        )
    if "consul" not in cluster.live():
        print("\nConsul is not running: no view of the workers' health")
        return
    print()
    config = registrar_config(
        {
            "CONSUL_HTTP_ADDR": f"127.0.0.1:{cluster.config.consul_http_port}",
            **cluster.token_env("operator"),
            **cluster.mode.consul_client_env(),  # secure: HTTPS, verified against the cluster's CA
        }
    )
    print_instances(list_instances(build_client(config), SERVICE_NAME))
