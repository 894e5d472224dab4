"""Consul's HTTP API over TLS in secured mode: its certificate, the agent's file settings, and what clients verify.

The certificate comes from the cluster's local CA (scripts/tls): issued at the first secure start,
kept while valid, issued again when due. Clients verify it against the CA's certificate, named
by CONSUL_CACERT as Consul's own CLI, consul-template and py-consul read it (docs/SECURITY.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from scripts.tls import ensure_ca, ensure_server_cert
from scripts.tls.store import CA_CERT

CERT_NAME = "consul"  # RUN_DIR/tls/consul.pem, consul-key.pem
# server.<datacenter>.consul: the name verify_server_hostname checks on RPC between agents.
SERVER_NAME = "server.dc1.consul"
DNS_NAMES = (SERVER_NAME, "localhost")
IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class ConsulTls:
    """Where the CA's certificate and Consul's certificate and key are."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def agent_settings(self) -> dict[str, str]:
        """The agent's TLS files (the ports that turn HTTPS on and HTTP off are the mode's own file)."""
        return {"ca_file": str(self.ca_file), "cert_file": str(self.cert_file), "key_file": str(self.key_file)}

    def client_env(self) -> dict[str, str]:
        """What a client of the API needs to speak HTTPS to a host:port address and verify the server."""
        return {"CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": str(self.ca_file)}


def consul_tls_at(directory: Path) -> ConsulTls:
    """The files ensure_consul_tls keeps in directory, whether or not they exist yet."""
    return ConsulTls(
        ca_file=directory / CA_CERT,
        cert_file=directory / f"{CERT_NAME}.pem",
        key_file=directory / f"{CERT_NAME}-key.pem",
    )


def ensure_consul_tls(directory: Path, dns_names: Sequence[str] = DNS_NAMES, ips: Sequence[str] = IPS) -> ConsulTls:
    """The CA and Consul's certificate in directory, issued only when missing or due."""
    ca = ensure_ca(directory)
    cert = ensure_server_cert(ca, directory, CERT_NAME, list(dns_names), list(ips), client_auth=True)
    return ConsulTls(ca_file=ca.cert, cert_file=cert.cert, key_file=cert.key)


def write_agent_settings(tls: ConsulTls, path: Path) -> Path:
    """The agent's -config-file naming the TLS files (paths only, no key material)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tls.agent_settings(), indent=2) + "\n")
    return path
