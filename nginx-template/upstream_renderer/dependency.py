"""What the template asks Consul for and what Consul answers, as consul-template's dependency/health_service.go."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# Check IDs that Consul uses for maintenance mode (see consul/api/health.go).
NODE_MAINTENANCE = "_node_maintenance"
SERVICE_MAINTENANCE_PREFIX = "_service_maintenance:"
STATUS_FILTERS = ("any", "passing", "warning", "critical", "maintenance")
# Same shape consul-template accepts for a service name (no tag, datacenter or near).
SERVICE_NAME_RE = re.compile(r"[\w\-/]+")


class InvalidQuery(ValueError):
    """A service query outside what the renderer implements; the template names its line."""


@dataclass(frozen=True)
class Instance:
    """One service instance as consul-template's HealthService exposes it to templates."""

    node: str
    id: str
    name: str
    address: str
    port: int
    status: str
    node_address: str = ""
    # A check of the instance has run and failed (critical with output). A registration that
    # Consul has not checked yet (a restarted agent's) is critical too, but with no output.
    failed_check: bool = False
    # Service meta (consul-template's .ServiceMeta): the model name and version workers register.
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_health_entry(cls, entry: Mapping[str, Any]) -> "Instance":
        """Build from one element of Consul's /v1/health/service/<name> answer."""
        node, service = entry["Node"], entry["Service"]
        return cls(
            node=node["Node"],
            id=service["ID"],
            name=service["Service"],
            address=service.get("Address") or node["Address"],
            port=int(service["Port"]),
            status=aggregate_status(entry.get("Checks") or []),
            node_address=node["Address"],
            failed_check=any(
                check.get("Status") == "critical" and (check.get("Output") or "").strip()
                for check in entry.get("Checks") or []
            ),
            meta=dict(service.get("Meta") or {}),
        )


# Template field name -> Instance attribute, exactly the fields templates may read.
INSTANCE_FIELDS = {
    "Node": "node",
    "ID": "id",
    "Name": "name",
    "Address": "address",
    "Port": "port",
    "Status": "status",
    "NodeAddress": "node_address",
    "ServiceMeta": "meta",
}


def aggregate_status(checks: Iterable[Mapping[str, Any]]) -> str:
    """One status for all checks of an entry, as consul's api.HealthChecks.AggregatedStatus."""
    seen = set()
    for check in checks:
        check_id = check.get("CheckID", "")
        if check_id == NODE_MAINTENANCE or check_id.startswith(SERVICE_MAINTENANCE_PREFIX):
            seen.add("maintenance")
            continue
        status = check.get("Status")
        if status not in ("passing", "warning", "critical"):
            return ""  # an unknown status matches no filter except "any"
        seen.add(status)
    for status in ("maintenance", "critical", "warning"):
        if status in seen:
            return status
    return "passing"


@dataclass(frozen=True)
class ServiceQuery:
    """The argument of `service "name|filter,..."`."""

    name: str
    filters: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "ServiceQuery":
        """Parse like consul-template: no filter means passing only; filters are sorted."""
        name, _, filter_text = text.partition("|")
        if not SERVICE_NAME_RE.fullmatch(name):
            raise InvalidQuery(
                f"unsupported service query {text!r}: only 'name' or 'name|status,...' (no tag, @datacenter or ~near)"
            )
        filters = [f.strip() for f in filter_text.split(",") if f.strip()] if filter_text else []
        for item in filters:
            if item not in STATUS_FILTERS:
                raise InvalidQuery(f"invalid status filter {item!r} in {text!r}")
        return cls(name=name, filters=tuple(sorted(filters)) or ("passing",))

    def accepts(self, status: str) -> bool:
        """Whether an instance with this aggregated status is returned."""
        return "any" in self.filters or status in self.filters

    def select(self, instances: Iterable[Instance], name: str | None = None) -> list[Instance]:
        """Filter by name and status, then order by node then ID as consul-template does."""
        wanted = name or self.name
        chosen = [i for i in instances if i.name == wanted and self.accepts(i.status)]
        return sorted(chosen, key=lambda i: (i.node, i.id))
