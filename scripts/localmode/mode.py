"""Normal or secured mode of a run directory, and the Consul tokens secured mode hands each role.

The mode is decided when Consul starts and recorded in RUN_DIR/mode, so `scale`, `status` and
`down` follow a running cluster's mode (docs/SECURITY.md).
"""

from __future__ import annotations

from pathlib import Path

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
