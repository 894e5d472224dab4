"""Consul's blocking queries as consul-template's watch/ makes them: stale reads, index rules, the wait flag."""

from __future__ import annotations

import argparse
import base64
import contextlib
import re
from dataclasses import dataclass
from typing import Callable, ContextManager

import requests

from upstream_renderer.logs import log

BLOCK_WAIT_SECONDS = 30.0
READ_TIMEOUT = 10.0  # a read that does not block
# consul-template's default max_stale: any server may answer unless it lost the leader longer.
DEFAULT_MAX_STALE = 2.0
DEFAULT_WAIT = "0.2s:2s"
# The KV keys templates read (the rollout's shares, upstream.ctmpl) and how often they are read.
DEFAULT_KV_PREFIX = "ner/rollout/"
DEFAULT_KEY_POLL = 1.0


class ConsulUnavailable(RuntimeError):
    """Consul did not answer usefully; keep the last good config and retry later."""

    def __init__(self, message: str, reached: bool):
        super().__init__(message)
        # True when the agent itself answered (an HTTP error): its registrations are intact,
        # so what it lists next is not a restart's half-empty catalog.
        self.reached = reached


def consul_base(addr: str, ssl: bool = False) -> str:
    """The API's base URL from host:port or http(s)://host:port; ssl (CONSUL_HTTP_SSL) makes it https in any case."""
    scheme, sep, rest = addr.partition("://")
    host_port = rest if sep else addr
    return f"{'https' if ssl or (sep and scheme.lower() == 'https') else 'http'}://{host_port.rstrip('/')}"


@dataclass(frozen=True)
class ConsulTls:
    """How an https Consul is verified: the CA its certificate must chain to ("" = system CAs), a client certificate."""

    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""

    @property
    def verify(self) -> str | bool:
        return self.ca_file or True

    @property
    def cert(self) -> str | tuple[str, str] | None:
        if not self.client_cert:
            return None
        return (self.client_cert, self.client_key) if self.client_key else self.client_cert


class Consul:
    """Blocking queries on /v1/health/service/<name>, stale-tolerant like consul-template."""

    def __init__(self, addr: str, token: str = "", max_stale: float = DEFAULT_MAX_STALE, tls: ConsulTls = ConsulTls()):
        self.base = consul_base(addr)
        self.max_stale = max_stale
        self.tls = tls
        self.session = requests.Session()
        if token:
            self.session.headers["X-Consul-Token"] = token

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        """All entries of the service (any status) and the X-Consul-Index of the answer.

        A stale read is answered by whichever server the agent asks (the agent itself when it
        is a server), so a blocking query is not stuck on a leader that just dropped off the
        network. An answer from a server that has not heard from the leader for longer than
        max_stale is read again from the leader."""
        params: dict[str, str] = {}
        if index > 0:
            params = {"index": str(index), "wait": f"{max(int(wait * 1000), 1)}ms"}
        timeout = wait + wait / 16 + 5 if index > 0 else READ_TIMEOUT  # Consul adds up to wait/16 jitter
        stale = self.max_stale > 0
        entries, new_index, last_contact = self._get(name, {**params, "stale": ""} if stale else params, timeout)
        if stale and last_contact > self.max_stale:
            entries, new_index, _ = self._get(name, {}, READ_TIMEOUT)
        return entries, new_index

    def _get(self, name: str, params: dict[str, str], timeout: float) -> tuple[list[dict], int, float]:
        """One request: entries, X-Consul-Index, and X-Consul-LastContact in seconds."""
        try:
            # verify and cert on each request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
            response = self.session.get(
                f"{self.base}/v1/health/service/{name}",
                params=params,
                timeout=timeout,
                verify=self.tls.verify,
                cert=self.tls.cert,
            )
        except requests.RequestException as exc:
            raise ConsulUnavailable(f"{type(exc).__name__}: {exc}", reached=False) from exc
        try:
            response.raise_for_status()
            entries = response.json()
            new_index = int(response.headers.get("X-Consul-Index", "0"))
            last_contact = int(response.headers.get("X-Consul-LastContact", "0")) / 1000
        except (requests.RequestException, ValueError) as exc:
            raise ConsulUnavailable(f"{type(exc).__name__}: {exc}", reached=True) from exc
        return entries, new_index, last_contact

    def kv_tree(self, prefix: str) -> dict[str, str]:
        """Every key under prefix with its value ({} when there is none); raises ConsulUnavailable.

        A failed read is never "no keys": the caller keeps what it rendered from the last good read."""
        url = f"{self.base}/v1/kv/{prefix}"
        params = {"recurse": "", **({"stale": ""} if self.max_stale > 0 else {})}
        try:
            response = self.session.get(
                url, params=params, timeout=READ_TIMEOUT, verify=self.tls.verify, cert=self.tls.cert
            )
        except requests.RequestException as exc:
            raise ConsulUnavailable(f"{type(exc).__name__}: {exc}", reached=False) from exc
        if response.status_code == 404:
            return {}
        try:
            response.raise_for_status()
            return {
                item["Key"]: base64.b64decode(item["Value"]).decode("utf-8") if item.get("Value") else ""
                for item in response.json()
            }
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise ConsulUnavailable(f"KV {prefix}: {type(exc).__name__}: {exc}", reached=True) from exc


def next_index(sent: int, received: int) -> int:
    """Consul's rules: reset to 0 when the index goes backwards, never block on 0."""
    if received < sent:
        return 0
    return max(received, 1)


@dataclass(frozen=True)
class Answer:
    """One blocking query's entries, whether Consul's index moved, and whether it went backwards."""

    entries: list[dict]
    moved: bool
    reset: bool


class View:
    """One service watched by blocking queries from the last index (consul-template's watch.View)."""

    def __init__(
        self, consul: Consul, service: str, waiting: Callable[[], ContextManager[None]] = contextlib.nullcontext
    ):
        self.consul = consul
        self.service = service
        self.waiting = waiting  # the blocking request runs inside it: a signal may end the wait
        self.index = 0

    def fetch(self, wait: float) -> Answer:
        """Block up to `wait` for a change after the last index; raises ConsulUnavailable."""
        with self.waiting():
            entries, received = self.consul.health_service(self.service, self.index, wait)
        sent, self.index = self.index, next_index(self.index, received)
        if self.index == 0:
            log.warning(
                "consul index went backwards; reading afresh", extra={"fields": {"sent": sent, "received": received}}
            )
        return Answer(entries, moved=received != sent, reset=self.index == 0)

    def restart(self) -> None:
        """Read afresh: after an outage the agent may be a new one."""
        self.index = 0


def parse_wait(value: str) -> tuple[float, float]:
    """'MIN:MAX' or 'MIN' with Go-like units (200ms, 2s, 1m) or plain seconds."""
    low, _, high = value.partition(":")
    wait_min = parse_duration(low)
    wait_max = parse_duration(high) if high else wait_min * 4
    if wait_max < wait_min:
        raise argparse.ArgumentTypeError("--wait MAX must be >= MIN")
    return wait_min, wait_max


def parse_duration(text: str) -> float:
    """Seconds from '200ms', '2s', '1m' or a plain number of seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
