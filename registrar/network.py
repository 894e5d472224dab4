"""Addresses: parse the Consul address and choose the address other hosts reach this worker on."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

DEFAULT_CONSUL_PORT = 8500
DEFAULT_CONSUL_TLS_PORT = 8501


class AddressError(ValueError):
    """An address in the environment that cannot be used; raised so a typo fails at start-up."""


def parse_consul_addr(value: str) -> tuple[str, str, int]:
    """Split `host:port` or `http(s)://host:port` into (scheme, host, port), as the Consul CLI accepts."""
    text = value.strip()
    if not text:
        raise AddressError("CONSUL_HTTP_ADDR is empty")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise AddressError(f"CONSUL_HTTP_ADDR {value!r}: scheme must be http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise AddressError(f"CONSUL_HTTP_ADDR {value!r}: expected host:port, not a path")
    host = parts.hostname
    if not host:
        raise AddressError(f"CONSUL_HTTP_ADDR {value!r}: no host")
    try:
        port = parts.port
    except ValueError as error:
        raise AddressError(f"CONSUL_HTTP_ADDR {value!r}: {error}") from None
    if port is None:
        port = DEFAULT_CONSUL_TLS_PORT if scheme == "https" else DEFAULT_CONSUL_PORT
    return scheme, host, port


def is_loopback(host: str) -> bool:
    """True for localhost names and 127.0.0.0/8 / ::1, which no other host can reach."""
    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for 0.0.0.0 / ::, which mean "every interface" and cannot be advertised."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def route_source_address(host: str, port: int) -> str:
    """The local address the kernel would use to reach host:port (UDP connect: no packet is sent)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, socktype, proto) as sock:
                sock.connect(sockaddr)
                return sock.getsockname()[0]
        except OSError as error:
            last_error = error
    raise last_error or OSError(f"no route to {host}")


def default_advertise_address(consul_host: str, consul_port: int) -> str | None:
    """Loopback only when Consul itself is on loopback; otherwise the address that routes to Consul.

    Returns None when no non-loopback route can be found yet (e.g. the Consul name does not
    resolve before its container starts): the caller retries at registration time.
    """
    if is_loopback(consul_host):
        return "::1" if ":" in consul_host.strip("[]") else "127.0.0.1"
    try:
        address = route_source_address(consul_host, consul_port)
    except OSError:
        return None
    if is_loopback(address) or is_wildcard(address):
        return None
    return address


def host_port(host: str, port: int) -> str:
    """host:port with IPv6 literals in brackets, as URLs and nginx need."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
