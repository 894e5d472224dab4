"""Normal or secured mode of a run directory, the Consul tokens secured mode hands each role, and its TLS.

The mode is decided when Consul starts and recorded in RUN_DIR/mode, so `scale`, `status` and
`down` follow a running cluster's mode (docs/SECURITY.md).
"""

from __future__ import annotations

from pathlib import Path

from scripts.secured.consul_tls import ConsulTls, consul_tls_at
from scripts.secured.secretfiles import SecretStore


class RunMode:
    """The run directory's recorded mode; `requested` (NER_SECURE) before anything was recorded."""

    def __init__(self, run_dir: Path, requested: bool | None) -> None:
        self.run_dir = run_dir
        self.requested = requested

    @property
    def path(self) -> Path:
        return self.run_dir / "mode"

    @property
    def secure(self) -> bool:
        try:
            return self.path.read_text().strip() == "secure"
        except FileNotFoundError:
            return bool(self.requested)

    def record(self, secure: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path.write_text("secure\n" if secure else "normal\n")

    def secrets(self) -> SecretStore:
        """RUN_DIR/secrets: 0700 directory, one 0600 file per secret (docs/SECURITY.md)."""
        return SecretStore(self.run_dir / "secrets")

    def token(self, role: str) -> str | None:
        """The Consul token of a role (worker, gateway, agent, operator, ...) in secure mode, else None."""
        if not self.secure:
            return None
        secret = self.secrets().token(role)
        if not secret:
            raise RuntimeError(f"secure mode, but no {role} token in {self.secrets().path}: run `up` again")
        return secret

    def token_file(self, role: str) -> Path | None:
        """Where a program reads its role's token at each start (kept out of the supervisor's files)."""
        return self.secrets().file(f"{role}.token") if self.secure else None

    def token_env(self, role: str) -> dict[str, str]:
        secret = self.token(role)
        return {"CONSUL_HTTP_TOKEN": secret} if secret else {}

    def consul_headers(self, role: str = "gateway") -> dict[str, str]:
        secret = self.token(role)
        return {"X-Consul-Token": secret} if secret else {}

    # ---- Consul's HTTP API: HTTPS in secure mode (docs/SECURITY.md) ----------------------------
    def consul_tls(self) -> ConsulTls | None:
        """Secure mode: RUN_DIR/tls, the CA and Consul's certificate (issued when Consul starts); else None."""
        return consul_tls_at(self.run_dir / "tls") if self.secure else None

    def consul_url(self, port: int) -> str:
        """The local agent's API: https in secure mode (the port speaks TLS only), else http."""
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{port}"

    def consul_verify(self) -> str | bool:
        """requests' verify= for the API: the cluster's CA in secure mode, else the default."""
        tls = self.consul_tls()
        return str(tls.ca_file) if tls else True

    def consul_client_env(self) -> dict[str, str]:
        """CONSUL_HTTP_SSL and CONSUL_CACERT for a client given a host:port address, in secure mode."""
        tls = self.consul_tls()
        return tls.client_env() if tls else {}
