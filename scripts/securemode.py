"""Secured mode: Consul ACLs (default deny, one token per role), gossip encryption, gateway limits.

Used by `scripts/localcluster.py` (`make up SECURE=1`) and, from the command line, by whoever
brings up a secured Consul elsewhere (a compose one-shot service, see docs/SECURITY.md):

    python scripts/securemode.py gossip-key --secrets DIR
    python scripts/securemode.py init --consul 127.0.0.1:8500 --secrets DIR [--node NAME]
    python scripts/securemode.py limits --out FILE      # gateway: NER_GATEWAY_RATE / _BURST

Secrets are only ever written to files of mode 0600 inside a 0700 directory and are never
logged or printed: messages name the file and the token's AccessorID (its public identifier).
Everything here is idempotent: run it again and it only creates what is missing.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import requests

SERVICE_NAME = "ner-worker"
GLOBAL_MANAGEMENT_POLICY_ID = "00000000-0000-0000-0000-000000000001"
GOSSIP_CONFIG = "consul-gossip.json"  # {"encrypt": KEY}, passed to consul as -config-file
ROLES = ("worker", "gateway", "agent", "operator")

# ---- per-role policies -------------------------------------------------------------------


def policy_name(role: str, service: str = SERVICE_NAME) -> str:
    """Consul policy name of a role (operator has none: it holds global-management)."""
    return {"worker": f"{service}-worker", "gateway": f"{service}-gateway",
            "agent": f"{service}-agent"}[role]


def policy_rules(role: str, service: str = SERVICE_NAME, node: str | None = None) -> str:
    """HCL rules of a role's policy, verified against Consul 1.8.7 (see docs/SECURITY.md).

    worker:  register / maintenance / deregister its own service (service:write on exactly
             that name) and read health of it, which also needs node:read.
    gateway: read-only: the health of any service and the nodes they run on.
    agent:   the agent's own anti-entropy: write its node entry, read services. With `node`
             the grant is that node only; without it (compose: node names vary) any node.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", service):
        raise ValueError(f"bad service name {service!r}")
    if role == "worker":
        return (f'service "{service}" {{\n  policy = "write"\n}}\n'
                'node_prefix "" {\n  policy = "read"\n}\n')
    if role == "gateway":
        return ('service_prefix "" {\n  policy = "read"\n}\n'
                'node_prefix "" {\n  policy = "read"\n}\n')
    if role == "agent":
        if node is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", node):
            raise ValueError(f"bad node name {node!r}")
        node_rule = f'node "{node}"' if node else 'node_prefix ""'
        return (f'{node_rule} {{\n  policy = "write"\n}}\n'
                'service_prefix "" {\n  policy = "read"\n}\n')
    raise ValueError(f"unknown role {role!r}; roles with a policy: worker, gateway, agent")


# ---- secrets on disk ---------------------------------------------------------------------


def mask(secret: str) -> str:
    """What may be shown of a secret: nothing but its length."""
    return f"<secret, {len(secret)} chars>"


@dataclass(frozen=True)
class SecretStore:
    """A 0700 directory of 0600 files, one secret each; nothing else writes there."""

    path: Path

    def file(self, name: str) -> Path:
        if not re.fullmatch(r"[a-z][a-z0-9.-]*", name):
            raise ValueError(f"bad secret name {name!r}")
        return self.path / name

    def ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    def read(self, name: str) -> str | None:
        try:
            return self.file(name).read_text().strip() or None
        except FileNotFoundError:
            return None

    def write(self, name: str, value: str) -> Path:
        """Atomically replace the file; created 0600 from the start (no window with wider mode)."""
        self.ensure_dir()
        target = self.file(name)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, value.encode() + (b"" if value.endswith("\n") else b"\n"))
        finally:
            os.close(fd)
        os.replace(tmp, target)
        return target

    def token(self, role: str) -> str | None:
        return self.read(f"{role}.token")

    def all_secrets(self) -> dict[str, str]:
        """Every secret value kept here, by file name (gossip key unwrapped), for leak checks."""
        found = {}
        for path in sorted(self.path.glob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            text = path.read_text().strip()
            if path.name == GOSSIP_CONFIG:
                text = json.loads(text)["encrypt"]
            found[path.name] = text
        return found


def ensure_gossip_key(store: SecretStore, consul_bin: Path | None) -> Path:
    """Generate the gossip key once; return the config file holding it.

    With `consul keygen` when consul_bin is given, else the same thing in Python (32 random
    bytes, base64), for images without the consul binary (the compose one-shot).
    """
    path = store.file(GOSSIP_CONFIG)
    if store.read(GOSSIP_CONFIG):
        os.chmod(path, 0o600)
        return path
    if consul_bin is None:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
    else:
        key = subprocess.run([str(consul_bin), "keygen"], capture_output=True, text=True, timeout=30,
                             check=True).stdout.strip()
    if not re.fullmatch(r"[A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{22}==", key):
        raise RuntimeError("consul keygen returned something that is not a gossip key")
    return store.write(GOSSIP_CONFIG, json.dumps({"encrypt": key}))


# ---- the ACL HTTP API (Consul 1.4+ "new" ACL system; 1.8.7 verified) ----------------------


class AclError(RuntimeError):
    """The ACL system refused or is in a state this code cannot repair by itself."""


class NotReady(RuntimeError):
    """No leader yet or ACLs still initialising: retry."""


@dataclass
class AclApi:
    """The few /v1/acl and /v1/agent/token calls secured mode needs; tokens go in a header only."""

    base: str
    timeout: float = 5.0

    def __post_init__(self) -> None:
        self.base = self.base if "://" in self.base else f"http://{self.base}"
        self.session = requests.Session()
        self.session.trust_env = False  # never pick up CONSUL_HTTP_TOKEN or proxies implicitly

    def _call(self, method: str, path: str, token: str | None = None, body: object = None):
        headers = {"X-Consul-Token": token} if token else {}
        try:
            response = self.session.request(method, self.base + path, headers=headers, timeout=self.timeout,
                                            data=None if body is None else json.dumps(body))
        except requests.RequestException as error:
            raise NotReady(f"{method} {path}: {type(error).__name__}") from None
        if response.status_code >= 500 or "No cluster leader" in response.text \
                or "ACL support disabled" in response.text:
            raise NotReady(f"{method} {path}: {response.status_code} {response.text.strip()[:120]}")
        return response

    def bootstrap(self) -> dict | None:
        """The bootstrap (management) token, or None when ACLs were bootstrapped before."""
        response = self._call("PUT", "/v1/acl/bootstrap")
        if response.status_code == 200:
            return response.json()
        if response.status_code == 403 and "bootstrap no longer allowed" in response.text:
            return None
        raise AclError(f"acl bootstrap: {response.status_code} {response.text.strip()[:200]}")

    def token_self(self, token: str) -> dict | None:
        """The token's own record, or None when Consul does not know it."""
        response = self._call("GET", "/v1/acl/token/self", token)
        if response.status_code == 200:
            return response.json()
        if response.status_code in (401, 403):
            return None
        raise AclError(f"token self: {response.status_code} {response.text.strip()[:200]}")

    def policies(self, token: str) -> dict[str, dict]:
        response = self._call("GET", "/v1/acl/policies", token)
        _ok(response, "list policies")
        return {entry["Name"]: entry for entry in response.json()}

    def read_policy(self, token: str, policy_id: str) -> dict:
        response = self._call("GET", f"/v1/acl/policy/{policy_id}", token)
        _ok(response, "read policy")
        return response.json()

    def put_policy(self, token: str, name: str, rules: str, description: str,
                   policy_id: str | None = None) -> dict:
        body = {"Name": name, "Rules": rules, "Description": description}
        path = f"/v1/acl/policy/{policy_id}" if policy_id else "/v1/acl/policy"
        response = self._call("PUT", path, token, body)
        _ok(response, f"write policy {name}")
        return response.json()

    def create_token(self, token: str, description: str, policies: list[dict]) -> dict:
        response = self._call("PUT", "/v1/acl/token", token,
                              {"Description": description, "Policies": policies, "Local": False})
        _ok(response, f"create token {description!r}")
        return response.json()

    def delete_token(self, token: str, accessor_id: str) -> None:
        _ok(self._call("DELETE", f"/v1/acl/token/{accessor_id}", token), "delete token")

    def set_agent_token(self, token: str, agent_token: str) -> None:
        """acl.tokens.agent at runtime; with enable_token_persistence it survives restarts."""
        _ok(self._call("PUT", "/v1/agent/token/agent", token, {"Token": agent_token}), "set agent token")

    def node_name(self, token: str) -> str:
        response = self._call("GET", "/v1/agent/self", token)
        _ok(response, "agent self")
        return response.json()["Config"]["NodeName"]


def _ok(response: requests.Response, what: str) -> None:
    if response.status_code != 200:
        raise AclError(f"{what}: {response.status_code} {response.text.strip()[:200]}")


def retry(call: Callable[[], object], timeout: float, interval: float = 0.2):
    """call() until it stops raising NotReady, or raise TimeoutError with the last reason."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except NotReady as error:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Consul ACLs not ready after {timeout:.0f}s: {error}") from None
            time.sleep(interval)


# ---- the whole set-up ------------------------------------------------------------------------

ROLE_DESCRIPTIONS = {
    "worker": "ner worker: registers, drains and deregisters ner-worker instances",
    "gateway": "ner gateway renderer: reads service health",
    "agent": "ner consul agent: anti-entropy of its own node",
    "operator": "ner operator: management (CLI, UI)",
}


@dataclass
class AclSetup:
    """What ensure_acls did, without any secret: accessor IDs and what was created."""

    bootstrapped: bool
    created: list[str]
    accessors: dict[str, str]


def ensure_acls(consul: str, store: SecretStore, service: str = SERVICE_NAME, node: str | None = "",
                timeout: float = 30.0, say: Callable[[str], None] = lambda message: None) -> AclSetup:
    """Bootstrap once, then make sure every role's policy and token exist and work.

    node: "" = the agent's own node name (asked from Consul), None = any node (node_prefix "").
    Raises AclError when Consul was bootstrapped by someone else and the bootstrap token is gone.
    """
    api = AclApi(consul)
    store.ensure_dir()
    created: list[str] = []
    management = store.token("bootstrap")
    bootstrapped = False
    if management and retry(lambda: api.token_self(management), timeout) is None:
        say("acl: the stored bootstrap token is unknown to Consul (its data was reset): bootstrapping again")
        management = None
    if not management:
        record = retry(api.bootstrap, timeout)
        if record is None:
            raise AclError(f"Consul's ACLs were bootstrapped already, but {store.file('bootstrap.token')} "
                           "is missing or invalid: stop the cluster and remove its consul-data directory, "
                           "or follow Consul's bootstrap reset procedure (docs/SECURITY.md)")
        store.write("bootstrap.token", record["SecretID"])
        management = record["SecretID"]
        bootstrapped = True
        created.append("bootstrap")
        say(f"acl: bootstrapped; management token in {store.file('bootstrap.token')} "
            f"(accessor {record['AccessorID']})")

    node_name = api.node_name(management) if node == "" else node
    existing = retry(lambda: api.policies(management), timeout)
    for role in ("worker", "gateway", "agent"):
        name, rules = policy_name(role, service), policy_rules(role, service, node_name)
        entry = existing.get(name)
        if entry is None:
            api.put_policy(management, name, rules, ROLE_DESCRIPTIONS[role])
            created.append(f"policy:{name}")
        elif api.read_policy(management, entry["ID"]).get("Rules", "").strip() != rules.strip():
            api.put_policy(management, name, rules, ROLE_DESCRIPTIONS[role], policy_id=entry["ID"])
            created.append(f"policy:{name} (updated)")

    accessors: dict[str, str] = {}
    for role in ROLES:
        wanted = ({"ID": GLOBAL_MANAGEMENT_POLICY_ID} if role == "operator"
                  else {"Name": policy_name(role, service)})
        secret = store.token(role)
        record = api.token_self(secret) if secret else None
        if record is not None and _has_policy(record, wanted):
            accessors[role] = record["AccessorID"]
            continue
        record = api.create_token(management, ROLE_DESCRIPTIONS[role], [wanted])
        store.write(f"{role}.token", record["SecretID"])
        accessors[role] = record["AccessorID"]
        created.append(f"token:{role}")
        say(f"acl: {role} token in {store.file(f'{role}.token')} (accessor {record['AccessorID']})")
    api.set_agent_token(management, store.token("agent") or "")
    return AclSetup(bootstrapped=bootstrapped, created=created, accessors=accessors)


def _has_policy(record: Mapping, wanted: Mapping[str, str]) -> bool:
    key, value = next(iter(wanted.items()))
    return any(policy.get(key) == value for policy in record.get("Policies") or [])


# ---- gateway limits ----------------------------------------------------------------------------

RATE_RE = re.compile(r"^[1-9]\d*r/[sm]$")
NORMAL_RATE, NORMAL_BURST = "1000r/s", 2000
SECURE_RATE, SECURE_BURST = "20r/s", 40


@dataclass(frozen=True)
class RateLimit:
    """Per-client request rate at the gateway; rate None = off."""

    rate: str | None
    burst: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str], secure: bool) -> "RateLimit":
        """NER_GATEWAY_RATE ("20r/s", "600r/m" or "off") and NER_GATEWAY_BURST, per mode defaults."""
        rate = environ.get("NER_GATEWAY_RATE", "").strip() or (SECURE_RATE if secure else NORMAL_RATE)
        burst_text = environ.get("NER_GATEWAY_BURST", "").strip()
        if rate.lower() == "off":
            return cls(None, 0)
        if not RATE_RE.fullmatch(rate):
            raise ValueError(f"NER_GATEWAY_RATE={rate!r}: expected e.g. 20r/s, 600r/m or off")
        if burst_text and not burst_text.isdigit():
            raise ValueError(f"NER_GATEWAY_BURST={burst_text!r}: expected a whole number")
        burst = int(burst_text) if burst_text else (SECURE_BURST if secure else NORMAL_BURST)
        return cls(rate, burst)


def limits_snippet(limit: RateLimit, mode: str) -> str | None:
    """The nginx http-level snippet nginx.conf.tmpl includes from PREFIX/limits.d/; None = off.

    $ner_rate_key (defined in nginx.conf.tmpl) is the client address, empty for the gateway's
    own health URL: nginx does not count requests with an empty key.
    """
    if limit.rate is None:
        return None
    if not RATE_RE.fullmatch(limit.rate) or limit.burst < 0:
        raise ValueError(f"bad rate limit {limit}")
    return (f"# Written by scripts/securemode.py limits_snippet ({mode} mode); see docs/SECURITY.md.\n"
            f"# Per client address: {limit.rate}, bursts of {limit.burst} answered at once,\n"
            "# beyond that 429 (JSON, Retry-After) until the client slows down.\n"
            f"limit_req_zone $ner_rate_key zone=ner_per_client:10m rate={limit.rate};\n"
            f"limit_req zone=ner_per_client burst={limit.burst} nodelay;\n")


# ---- command line (compose one-shot, operators) -------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="bootstrap ACLs and write one token per role into --secrets")
    init.add_argument("--consul", default="127.0.0.1:8500", help="Consul HTTP address")
    init.add_argument("--secrets", type=Path, required=True, help="directory for the token files")
    init.add_argument("--node", default=None,
                      help="the agent token's node (default: any node, for several agents)")
    init.add_argument("--timeout", type=float, default=60.0)
    keygen = sub.add_parser("gossip-key", help="write SECRETS/consul-gossip.json with `consul keygen`")
    keygen.add_argument("--secrets", type=Path, required=True)
    keygen.add_argument("--consul-bin", type=Path, default=None,
                        help="consul binary for `consul keygen` (default: consul on PATH, else Python)")
    limits = sub.add_parser("limits", help="write the gateway's rate-limit snippet (secure defaults) "
                                           "from NER_GATEWAY_RATE / NER_GATEWAY_BURST")
    limits.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.command == "limits":
            snippet = limits_snippet(RateLimit.from_env(os.environ, secure=True), "secure")
            if snippet is None:
                args.out.unlink(missing_ok=True)
            else:
                args.out.write_text(snippet)
            say(f"gateway rate limit: {snippet.splitlines()[1][2:] if snippet else 'off'}")
        elif args.command == "gossip-key":
            consul_bin = args.consul_bin or (Path(found) if (found := shutil.which("consul")) else None)
            say(f"gossip key in {ensure_gossip_key(SecretStore(args.secrets), consul_bin)}")
        else:
            setup = ensure_acls(args.consul, SecretStore(args.secrets), node=args.node,
                                timeout=args.timeout, say=say)
            say(f"acl: ready ({', '.join(setup.created) or 'nothing new'})")
    except (AclError, TimeoutError, ValueError, subprocess.CalledProcessError) as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
