"""Secrets on disk: 0600 files in a 0700 directory, never logged or printed; the gossip key is one of them."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

GOSSIP_CONFIG = "consul-gossip.json"  # {"encrypt": KEY}, passed to consul as -config-file


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
        key = subprocess.run(
            [str(consul_bin), "keygen"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    if not re.fullmatch(r"[A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{22}==", key):
        raise RuntimeError("consul keygen returned something that is not a gossip key")
    return store.write(GOSSIP_CONFIG, json.dumps({"encrypt": key}))
