"""What Consul knows about the service's instances, for operators: status, endpoint, model, node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registrar.client import build_client
from registrar.config import RegistrarConfig
from registrar.network import host_port

MAINTENANCE_CHECK_PREFIX = "_service_maintenance:"
_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Instance:
    """One registered instance as the health endpoint reports it."""

    id: str
    service: str
    address: str
    port: int
    status: str
    model: str
    version: str
    node: str
    node_address: str

    @property
    def endpoint(self) -> str:
        return host_port(self.address, self.port)

    @property
    def model_label(self) -> str:
        if not self.model:
            return "-"
        return f"{self.model}@{self.version}" if self.version else self.model


def instance_status(checks: list[dict[str, Any]]) -> str:
    """`maintenance` when marked out by an operator or a drain, else the worst check status."""
    for check in checks:
        if check.get("CheckID", "").startswith(MAINTENANCE_CHECK_PREFIX):
            return "maintenance"
    worst = "passing"
    for check in checks:
        status = check.get("Status", "critical")
        if _SEVERITY.get(status, 2) > _SEVERITY.get(worst, 0):
            worst = status
    return worst


def list_instances(client: Any, service: str) -> list[Instance]:
    """Every instance of the service, healthy or not, sorted by ID."""
    _, entries = client.health.service(service)
    instances = []
    for entry in entries or []:
        svc, node = entry["Service"], entry["Node"]
        meta = svc.get("Meta") or {}
        instances.append(
            Instance(
                id=svc["ID"],
                service=svc["Service"],
                address=svc.get("Address") or node.get("Address", ""),
                port=int(svc.get("Port") or 0),
                status=instance_status(entry.get("Checks") or []),
                model=meta.get("model", ""),
                version=meta.get("model_version", ""),
                node=node.get("Node", ""),
                node_address=node.get("Address", ""),
            )
        )
    return sorted(instances, key=lambda instance: instance.id)


def find_instance(client: Any, service: str, service_id: str) -> Instance | None:
    for instance in list_instances(client, service):
        if instance.id == service_id:
            return instance
    return None


def agent_for(config: RegistrarConfig, client: Any, instance: Instance) -> Any:
    """A client for the agent that holds the instance: services are agent-local state.

    The same agent when it is the instance's node; otherwise the node's address with the
    configured HTTP port and scheme (every agent in a cluster exposes the same port).
    """
    local_node = (client.agent.self() or {}).get("Config", {}).get("NodeName")
    if instance.node == local_node or not instance.node_address:
        return client
    return build_client(config, host=instance.node_address)
