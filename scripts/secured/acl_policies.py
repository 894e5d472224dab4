"""What each role may do in Consul: its policy's name, rules and description, and how a token links to it."""

from __future__ import annotations

import re

from registrar.config import SERVICE_NAME

GLOBAL_MANAGEMENT_POLICY_ID = "00000000-0000-0000-0000-000000000001"
ROLES = ("worker", "gateway", "agent", "prometheus", "operator")
POLICY_ROLES = ("worker", "gateway", "agent", "prometheus")  # operator holds global-management instead
ROLE_DESCRIPTIONS = {
    "worker": "ner worker: registers, drains and deregisters ner-worker instances",
    "gateway": "ner gateway renderer: reads service health and the rollout's shares",
    "agent": "ner consul agent: anti-entropy of its own node",
    "prometheus": "ner prometheus: reads service health and the agent's metrics",
    "operator": "ner operator: management (CLI, UI)",
}

Rules = dict[str, dict[str, dict[str, str]]]
ROLLOUT_KV_PREFIX = "ner/rollout/"  # the model versions' shares the gateway's upstream reads


def policy_name(role: str, service: str = SERVICE_NAME) -> str:
    """Consul policy name of a role (operator has none: it holds global-management)."""
    return {
        "worker": f"{service}-worker",
        "gateway": f"{service}-gateway",
        "agent": f"{service}-agent",
        "prometheus": f"{service}-prometheus",
    }[role]


def policy_link(role: str, service: str = SERVICE_NAME) -> dict[str, str]:
    """How a role's token names its policy: global-management by ID, the others by name."""
    return {"ID": GLOBAL_MANAGEMENT_POLICY_ID} if role == "operator" else {"Name": policy_name(role, service)}


def _grant(policy: str, name: str = "") -> dict[str, dict[str, str]]:
    return {name: {"policy": policy}}


def policy_rules(role: str, service: str = SERVICE_NAME, node: str | None = None) -> Rules:
    """A role's rules in Consul's JSON rule form (the form py-consul sends), verified against 1.8.7.

    worker:  register / maintenance / deregister its own service (service:write on exactly
             that name) and read health of it, which also needs node:read.
    gateway: read-only: the health of any service and the nodes they run on, and the rollout's
             shares in KV (ner/rollout/, nginx-template/upstream.ctmpl).
    agent:   the agent's own anti-entropy: write its node entry, read services. With `node`
             the grant is that node only; without it (compose: node names vary) any node.
    prometheus: read-only: the gateway's reads, plus agent:read for /v1/agent/metrics.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", service):
        raise ValueError(f"bad service name {service!r}")
    if role == "worker":
        return {"service": _grant("write", service), "node_prefix": _grant("read")}
    if role == "gateway":
        return {
            "service_prefix": _grant("read"),
            "node_prefix": _grant("read"),
            "key_prefix": _grant("read", ROLLOUT_KV_PREFIX),
        }
    if role == "prometheus":
        return {"service_prefix": _grant("read"), "node_prefix": _grant("read"), "agent_prefix": _grant("read")}
    if role == "agent":
        if node is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", node):
            raise ValueError(f"bad node name {node!r}")
        node_rule = {"node": _grant("write", node)} if node else {"node_prefix": _grant("write")}
        return {**node_rule, "service_prefix": _grant("read")}
    raise ValueError(f"unknown role {role!r}; roles with a policy: {', '.join(POLICY_ROLES)}")
