"""The py-consul client built from RegistrarConfig, never from ambient environment variables."""

from __future__ import annotations

import consul
from registrar.config import RegistrarConfig


def build_client(
    config: RegistrarConfig, timeout: float | None = None, host: str | None = None, port: int | None = None
) -> consul.Consul:
    """A client for the configured agent (or another agent at host/port with the same settings)."""
    client = consul.Consul(
        host=host or config.consul_host,
        port=port or config.consul_port,
        scheme=config.consul_scheme,
        token=config.token or None,
        verify=config.consul_verify,
        cert=config.consul_cert,
        connections_timeout=timeout if timeout is not None else config.consul_timeout,
    )
    # py-consul lets CONSUL_HTTP_TOKEN override the argument; the config is the one source.
    client.token = config.token or None
    return client
