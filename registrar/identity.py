"""Service instance IDs: unique across hosts, containers and restarts, stable for one process."""

from __future__ import annotations

import re
import secrets
import socket

from registrar.config import SERVICE_NAME

_UNSAFE = re.compile(r"[^a-z0-9-]+")
MAX_HOST_CHARS = 40


def _safe_host(hostname: str) -> str:
    """Hostname reduced to URL-safe characters: the ID appears in agent API paths."""
    host = _UNSAFE.sub("-", hostname.lower().split(".")[0]).strip("-")
    return (host[:MAX_HOST_CHARS].rstrip("-")) or "host"


def new_instance_id(service: str = SERVICE_NAME, hostname: str | None = None) -> str:
    """`<service>-<host>-<8 hex>`; the random part keeps two processes on one host apart.

    A fresh ID per process also side-steps Consul 1.8 keeping an old check status when the
    same ID is registered again with a changed definition.
    """
    host = _safe_host(hostname if hostname is not None else socket.gethostname())
    return f"{service}-{host}-{secrets.token_hex(4)}"
