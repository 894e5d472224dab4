"""The ACL calls secured mode makes, through py-consul (Consul 1.4+ ACL system, verified on 1.8.7).

Every call names its token; nothing is taken from CONSUL_HTTP_TOKEN or proxy variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import requests
from consul.callback import CB
from consul.exceptions import ACLDisabled, ACLPermissionDenied, ConsulException

import consul
from registrar.network import parse_consul_addr
from registrar.retrying import retry_call
from scripts.secured.acl_policies import Rules

T = TypeVar("T")
# Consul's words for "not yet" (while the ACL system starts up it answers 500: "... in legacy mode").
_NOT_READY_SIGNS = ("No cluster leader", "ACL support disabled")


class AclError(RuntimeError):
    """The ACL system refused or is in a state this code cannot repair by itself."""


class AclNotReady(RuntimeError):
    """Consul has no leader yet or its ACL system is still starting: retry."""


class AclClient:
    """The few /v1/acl and /v1/agent calls secured mode needs."""

    def __init__(self, address: str, timeout: float = 5.0, ca_file: Path | None = None) -> None:
        """address: host:port or http(s)://host:port; ca_file: the CA an https Consul's certificate must chain to."""
        scheme, host, port = parse_consul_addr(address)
        verify = str(ca_file) if ca_file else True
        self.consul = consul.Consul(host=host, port=port, scheme=scheme, verify=verify, connections_timeout=timeout)
        self.consul.token = None  # py-consul would take CONSUL_HTTP_TOKEN over the argument
        self.consul.http.session.trust_env = False  # and requests would follow proxy variables

    def _call(self, what: str, call: Callable[[], T], refused: Callable[[str], T] | None = None) -> T:
        """call(), Consul's errors sorted into retry (AclNotReady), refused(text) for 401/403, AclError."""
        try:
            return call()
        except requests.exceptions.SSLError as error:  # a certificate that does not verify will not start to
            raise AclError(f"{what}: TLS: {str(error)[:200]}") from None
        except requests.RequestException as error:
            raise AclNotReady(f"{what}: {type(error).__name__}") from None
        except ConsulException as error:
            text = str(error).strip()
            if type(error) is ConsulException or any(sign in text for sign in _NOT_READY_SIGNS):
                raise AclNotReady(f"{what}: {text[:120]}") from None  # 5xx, or not yet
            if refused is not None and isinstance(error, (ACLPermissionDenied, ACLDisabled)):
                return refused(text)
            raise AclError(f"{what}: {text[:200]}") from None

    def bootstrap(self) -> dict | None:
        """The bootstrap (management) token, or None when ACLs were bootstrapped before."""

        def bootstrapped_before(text: str) -> None:
            if "bootstrap no longer allowed" not in text:
                raise AclError(f"acl bootstrap: {text[:200]}")

        return self._call("acl bootstrap", self.consul.acl.bootstrap, refused=bootstrapped_before)

    def token_self(self, token: str) -> dict | None:
        """The token's own record, or None when Consul does not know it."""
        return self._call("token self", lambda: self.consul.acl.token.read_self(token=token), refused=lambda text: None)

    def policies(self, token: str) -> dict[str, dict]:
        """Every policy by name (without rules)."""
        listed = self._call("list policies", lambda: self.consul.acl.policy.list(token=token))
        return {entry["Name"]: entry for entry in listed}

    def policy_rules(self, token: str, policy_id: str) -> str:
        """The rules text Consul holds for a policy."""
        policy = self._call("read policy", lambda: self.consul.acl.policy.read(policy_id, token=token))
        if policy is None:
            raise AclError(f"read policy {policy_id}: not found")
        return policy.get("Rules", "")

    def put_policy(self, token: str, name: str, rules: Rules, description: str, policy_id: str | None = None) -> dict:
        """Create the policy, or replace the rules of the one with policy_id."""
        policy = self.consul.acl.policy
        if policy_id is None:
            return self._call(
                f"create policy {name}", lambda: policy.create(name, token=token, description=description, rules=rules)
            )
        return self._call(
            f"update policy {name}",
            lambda: policy.update(policy_id, name, token=token, description=description, rules=rules),
        )

    def create_token(self, token: str, description: str, link: dict[str, str]) -> dict:
        """A new global token holding one policy, linked by {"ID": ...} or {"Name": ...}."""
        return self._call(
            f"create token {description!r}",
            lambda: self.consul.acl.token.create(
                token=token,
                description=description,
                local=False,
                policies_id=[link["ID"]] if "ID" in link else None,
                policies_name=[link["Name"]] if "Name" in link else None,
            ),
        )

    def set_agent_token(self, token: str, agent_token: str) -> None:
        """acl.tokens.agent at runtime; with enable_token_persistence it survives restarts."""
        self._call("set agent token", lambda: self.consul.agent.token.set_agent(agent_token, token=token))

    def node_name(self, token: str) -> str:
        """The agent's node name. py-consul's agent.self() sends no token, which default deny refuses."""
        agent = self._call(
            "agent self",
            lambda: self.consul.http.get(CB.json(), "/v1/agent/self", headers=self.consul.prepare_headers(token)),
        )
        return agent["Config"]["NodeName"]


def retry(call: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """call() until it stops raising AclNotReady, or raise TimeoutError with the last reason."""
    try:
        return retry_call(call, on=AclNotReady, timeout=timeout, interval=interval)
    except AclNotReady as error:
        raise TimeoutError(f"Consul ACLs not ready after {timeout:.0f}s: {error}") from None
