"""The whole ACL set-up, idempotent: bootstrap once, then every role's policy and token exist and work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from registrar.config import SERVICE_NAME
from scripts.secured.acl_client import AclClient, AclError, retry
from scripts.secured.acl_policies import (
    POLICY_ROLES,
    ROLE_DESCRIPTIONS,
    ROLES,
    Rules,
    policy_link,
    policy_name,
    policy_rules,
)
from scripts.secured.secretfiles import SecretStore


@dataclass
class AclSetup:
    """What ensure_acls did, without any secret: accessor IDs and what was created."""

    bootstrapped: bool
    created: list[str]
    accessors: dict[str, str]


def ensure_acls(
    consul: str,
    store: SecretStore,
    service: str = SERVICE_NAME,
    node: str | None = "",
    timeout: float = 30.0,
    say: Callable[[str], None] = lambda message: None,
    ca_file: Path | None = None,
) -> AclSetup:
    """Bootstrap once, then make sure every role's policy and token exist and work.

    node: "" = the agent's own node name (asked from Consul), None = any node (node_prefix "").
    ca_file: the CA that an https:// consul address's certificate must chain to.
    Raises AclError when Consul was bootstrapped by someone else and the bootstrap token is gone.
    """
    client = AclClient(consul, ca_file=ca_file)
    store.ensure_dir()
    created: list[str] = []
    management, bootstrapped = _management_token(client, store, timeout, say)
    if bootstrapped:
        created.append("bootstrap")

    node_name = client.node_name(management) if node == "" else node
    existing = retry(lambda: client.policies(management), timeout)
    for role in POLICY_ROLES:
        name, rules = policy_name(role, service), policy_rules(role, service, node_name)
        entry = existing.get(name)
        if entry is None:
            client.put_policy(management, name, rules, ROLE_DESCRIPTIONS[role])
            created.append(f"policy:{name}")
        elif not _same_rules(client.policy_rules(management, entry["ID"]), rules):
            client.put_policy(management, name, rules, ROLE_DESCRIPTIONS[role], policy_id=entry["ID"])
            created.append(f"policy:{name} (updated)")

    accessors: dict[str, str] = {}
    for role in ROLES:
        wanted = policy_link(role, service)
        secret = store.token(role)
        record = client.token_self(secret) if secret else None
        if record is not None and _has_policy(record, wanted):
            accessors[role] = record["AccessorID"]
            continue
        record = client.create_token(management, ROLE_DESCRIPTIONS[role], wanted)
        store.write(f"{role}.token", record["SecretID"])
        accessors[role] = record["AccessorID"]
        created.append(f"token:{role}")
        say(f"acl: {role} token in {store.file(f'{role}.token')} (accessor {record['AccessorID']})")
    client.set_agent_token(management, store.token("agent") or "")
    return AclSetup(bootstrapped=bootstrapped, created=created, accessors=accessors)


def _management_token(
    client: AclClient, store: SecretStore, timeout: float, say: Callable[[str], None]
) -> tuple[str, bool]:
    """The stored bootstrap token if Consul knows it, else a new one from bootstrapping; and whether it is new."""
    management = store.token("bootstrap")
    if management and retry(lambda: client.token_self(management), timeout) is not None:
        return management, False
    if management:
        say("acl: the stored bootstrap token is unknown to Consul (its data was reset): bootstrapping again")
    record = retry(client.bootstrap, timeout)
    if record is None:
        raise AclError(
            f"Consul's ACLs were bootstrapped already, but {store.file('bootstrap.token')} "
            "is missing or invalid: stop the cluster and remove its consul-data directory, "
            "or follow Consul's bootstrap reset procedure (docs/SECURITY.md)"
        )
    store.write("bootstrap.token", record["SecretID"])
    say(f"acl: bootstrapped; management token in {store.file('bootstrap.token')} (accessor {record['AccessorID']})")
    return record["SecretID"], True


def _same_rules(stored: str, wanted: Rules) -> bool:
    """Whether Consul holds these rules (a policy written in another form counts as different)."""
    try:
        return json.loads(stored) == wanted
    except ValueError:
        return False


def _has_policy(record: Mapping, wanted: Mapping[str, str]) -> bool:
    key, value = next(iter(wanted.items()))
    return any(policy.get(key) == value for policy in record.get("Policies") or [])
