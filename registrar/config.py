"""Registrar settings from the environment, read once per process into a frozen dataclass."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from registrar.network import AddressError, default_advertise_address, host_port, is_loopback, parse_consul_addr

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# The name workers register under unless NER_SERVICE_NAME says otherwise; secured mode's policies use it too.
SERVICE_NAME = "ner-worker"
# On/off values as every component spells them (local mode's NER_SECURE as well).
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A registrar environment variable with a value that cannot work; fails the start, loudly."""


@dataclass(frozen=True)
class RegistrarConfig:
    """Everything the registrar needs; one instance per process."""

    consul_scheme: str = "http"
    consul_host: str = "127.0.0.1"
    consul_port: int = 8500
    token: str = ""
    register: bool = True
    service_name: str = SERVICE_NAME
    advertise_address: str | None = "127.0.0.1"
    advertise_address_explicit: bool = False
    advertise_port: int | None = None
    check_interval: str = "500ms"
    # Under overload /health waits for a gunicorn thread behind queued requests, often longer
    # than the 500 ms queue deadline: a timeout that short dropped busy workers from Consul just
    # when they were needed (docs/BENCHMARKS.md). A hung worker still leaves within about 7 s.
    check_timeout: str = "2s"
    check_failures: int = 2
    deregister_after: str = "1m"
    drain_seconds: float = 3.0
    resync_seconds: float = 2.0
    model_name: str = ""
    model_version: str = ""
    hostname: str = "localhost"
    consul_timeout: float = 3.0
    # HTTPS to Consul (CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, as Consul's CLI reads them):
    # the CA its certificate must chain to ("" = the system's CAs), and an optional client certificate.
    consul_ca_file: str = ""
    consul_client_cert: str = ""
    consul_client_key: str = ""

    @property
    def consul_url(self) -> str:
        """Base URL of the Consul agent HTTP API."""
        return f"{self.consul_scheme}://{host_port(self.consul_host, self.consul_port)}"

    @property
    def consul_verify(self) -> str | bool:
        """requests' verify=: the configured CA file, else the system's CAs (never off)."""
        return self.consul_ca_file or True

    @property
    def consul_cert(self) -> str | tuple[str, str] | None:
        """requests' cert=: the client certificate and key, the one file holding both, or none."""
        if not self.consul_client_cert:
            return None
        return (self.consul_client_cert, self.consul_client_key) if self.consul_client_key else self.consul_client_cert

    @property
    def consul_is_local(self) -> bool:
        """Whether Consul is on loopback, the only case where a loopback advertise address is right."""
        return is_loopback(self.consul_host)


def duration_seconds(value: str) -> float:
    """Seconds in a Go duration such as "1m30s", for comparisons against Consul's limits."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def _duration(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "").strip() or default
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        raw += "s"
    if not _DURATION.fullmatch(raw) or duration_seconds(raw) <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a positive duration such as 1s, 500ms, 1m")
    return raw


def _seconds(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r}: expected a whole number, 1 or more")
    return int(raw)


def parse_flag(name: str, raw: str) -> bool | None:
    """An on/off variable's value; None when it is empty, ValueError when it is neither."""
    text = raw.strip().lower()
    if not text:
        return None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={text!r}: expected 1 or 0")


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    try:
        value = parse_flag(name, environ.get(name, ""))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return default if value is None else value


def _port(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r}: expected a TCP port 1-65535")
    return int(raw)


def _tls_file(environ: Mapping[str, str], name: str) -> str:
    """A TLS file named by a variable: it must exist, so a typo fails the start instead of every request."""
    raw = environ.get(name, "").strip()
    if raw and not Path(raw).is_file():
        raise ConfigError(f"{name}={raw!r}: no such file")
    return raw


def _scheme(environ: Mapping[str, str], scheme: str) -> str:
    """https when the address says so or CONSUL_HTTP_SSL is on (then never http, as Consul's CLI does)."""
    return "https" if _flag(environ, "CONSUL_HTTP_SSL", False) else scheme


def _model_name(environ: Mapping[str, str]) -> str:
    """The worker's default model name is its model directory's name; report the same one."""
    name = environ.get("NER_MODEL_NAME", "").strip()
    if name:
        return name
    model_dir = environ.get("NER_MODEL_DIR", "").strip().rstrip("/")
    return Path(model_dir).name if model_dir else ""


def load_config(environ: Mapping[str, str] | None = None) -> RegistrarConfig:
    """Read the registrar variables (see docs/ARCHITECTURE.md); raise ConfigError on bad values."""
    env = os.environ if environ is None else environ
    try:
        scheme, host, port = parse_consul_addr(env.get("CONSUL_HTTP_ADDR", "") or "127.0.0.1:8500")
    except AddressError as error:
        raise ConfigError(str(error)) from None
    explicit_address = env.get("NER_ADVERTISE_ADDRESS", "").strip() or None
    advertise = explicit_address or default_advertise_address(host, port)
    client_cert, client_key = _tls_file(env, "CONSUL_CLIENT_CERT"), _tls_file(env, "CONSUL_CLIENT_KEY")
    if client_key and not client_cert:
        raise ConfigError("CONSUL_CLIENT_KEY is set without CONSUL_CLIENT_CERT")
    service_name = env.get("NER_SERVICE_NAME", "").strip() or SERVICE_NAME
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", service_name):
        raise ConfigError(f"NER_SERVICE_NAME={service_name!r}: letters, digits and dashes only")
    return RegistrarConfig(
        consul_scheme=_scheme(env, scheme),
        consul_host=host,
        consul_port=port,
        token=env.get("CONSUL_HTTP_TOKEN", "").strip(),
        register=_flag(env, "NER_REGISTER", True),
        service_name=service_name,
        advertise_address=advertise,
        advertise_address_explicit=explicit_address is not None,
        advertise_port=_port(env, "NER_ADVERTISE_PORT"),
        check_interval=_duration(env, "NER_CHECK_INTERVAL", "500ms"),
        check_timeout=_duration(env, "NER_CHECK_TIMEOUT", "2s"),
        check_failures=_count(env, "NER_CHECK_FAILURES", 2),
        deregister_after=_duration(env, "NER_DEREGISTER_AFTER", "1m"),
        drain_seconds=_seconds(env, "NER_DRAIN_SECONDS", 3.0, 0.0),
        resync_seconds=_seconds(env, "NER_RESYNC_SECONDS", 2.0, 0.05),
        model_name=_model_name(env),
        model_version=env.get("NER_MODEL_VERSION", "").strip(),
        hostname=socket.gethostname(),
        consul_ca_file=_tls_file(env, "CONSUL_CACERT"),
        consul_client_cert=client_cert,
        consul_client_key=client_key,
    )
