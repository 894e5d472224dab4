"""One worker instance's life in Consul: register, drain, deregister, and come back when forgotten."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable
from urllib.parse import quote

from consul import Check
from registrar.client import build_client
from registrar.config import RegistrarConfig, duration_seconds
from registrar.identity import new_instance_id
from registrar.logs import log_event
from registrar.network import default_advertise_address, host_port
from registrar.resync import Resync
from registrar.retrying import poll

__all__ = ["Registrar", "Resync", "new_instance_id"]

CONSUL_MIN_DEREGISTER_SECONDS = 60.0
POLL_SECONDS = 0.1


class Registrar:
    """Owns one service instance in the local Consul agent; every Consul error is logged, none raised."""

    def __init__(
        self,
        config: RegistrarConfig,
        instance_id: str | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        pid: int | None = None,
    ) -> None:
        self.config = config
        self.pid = os.getpid() if pid is None else pid
        self.instance_id = instance_id or new_instance_id(config.service_name, config.hostname)
        self.client = client if client is not None else build_client(config)
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.RLock()
        self._port: int | None = None
        self._address: str | None = None
        self._draining = False
        self._retired = False
        self._consul_ok = True
        if duration_seconds(config.deregister_after) < CONSUL_MIN_DEREGISTER_SECONDS:
            log_event(
                logging.WARNING,
                "registrar.deregister_after_raised_by_consul",
                configured=config.deregister_after,
                effective="1m",
            )

    @property
    def port(self) -> int | None:
        """The port last asked for; None until register() is called."""
        return self._port

    @property
    def draining(self) -> bool:
        return self._draining

    def advertise_address(self) -> str | None:
        """Explicit address, else config default, else a fresh route lookup (Consul may resolve now)."""
        if self._address:
            return self._address
        if self.config.advertise_address:
            return self.config.advertise_address
        return default_advertise_address(self.config.consul_host, self.config.consul_port)

    def check_definition(self, address: str, port: int) -> dict[str, Any]:
        """HTTP check on /health; Consul starts it critical, so no traffic before the first pass.

        The check names the instance: should this one die and another process take over its
        address, the check fails instead of passing on the newcomer's behalf.
        """
        check = Check.http(
            f"http://{host_port(address, port)}/health?id={quote(self.instance_id, safe='')}",
            self.config.check_interval,
            timeout=self.config.check_timeout,
            deregister=self.config.deregister_after,
        )
        check["Name"] = f"{self.config.service_name} /health"
        # One slow answer on a busy host must not drop the instance; a dead one still goes
        # critical within about check_failures intervals (Consul 1.7+).
        check["FailuresBeforeCritical"] = self.config.check_failures
        return check

    def tags(self) -> list[str]:
        """Tags for filtering in the catalog and the UI; empty values are left out."""
        tags = []
        if self.config.model_name:
            tags.append(f"model={self.config.model_name}")
        if self.config.model_version:
            tags.append(f"version={self.config.model_version}")
        return tags

    def meta(self) -> dict[str, str]:
        """Service meta (string values only, as Consul requires); empty values are left out."""
        meta = {
            "model": self.config.model_name,
            "model_version": self.config.model_version,
            "hostname": self.config.hostname,
            "pid": str(self.pid) if self.pid else "",
        }
        return {key: value for key, value in meta.items() if value}

    def service_definition(self, address: str, port: int) -> dict[str, Any]:
        """Keyword arguments for py-consul's agent.service.register."""
        return {
            "name": self.config.service_name,
            "service_id": self.instance_id,
            "address": address,
            "port": port,
            "tags": self.tags(),
            "meta": self.meta(),
            "check": self.check_definition(address, port),
        }

    def register(self, port: int, address: str | None = None) -> bool:
        """Register with the local agent; on failure the port is kept so ensure_registered retries."""
        with self._lock:
            self._port = port
            self._address = address
            self._retired = False
            return self._register()

    def _register(self) -> bool:
        assert self._port is not None
        address = self.advertise_address()
        if not address:
            log_event(
                logging.ERROR,
                "registrar.no_advertise_address",
                service_id=self.instance_id,
                consul=self.config.consul_url,
                hint="set NER_ADVERTISE_ADDRESS",
            )
            return False
        definition = self.service_definition(address, self._port)
        try:
            accepted = self.client.agent.service.register(**definition)
        except Exception as error:  # noqa: BLE001 - Consul trouble must never stop the worker
            self._consul_failed("register", error)
            return False
        self._consul_back()
        if not accepted:
            log_event(logging.ERROR, "registrar.register_rejected", service_id=self.instance_id)
            return False
        log_event(
            logging.INFO,
            "registrar.registered",
            service_id=self.instance_id,
            service=self.config.service_name,
            address=address,
            port=self._port,
            check=definition["check"]["http"],
            consul=self.config.consul_url,
        )
        return True

    def ensure_registered(self) -> bool:
        """Register again if the agent no longer lists this instance (restarted, state lost).

        Returns whether the agent lists the instance afterwards. Does nothing while draining or
        after deregister(), so a resync can never bring a leaving instance back.
        """
        with self._lock:
            if self._port is None or self._draining or self._retired:
                return False
            try:
                services = self.client.agent.services() or {}
            except Exception as error:  # noqa: BLE001
                self._consul_failed("list_services", error)
                return False
            self._consul_back()
            if self.instance_id in services:
                return True
            log_event(
                logging.WARNING, "registrar.instance_missing", service_id=self.instance_id, action="register again"
            )
            return self._register()

    def set_maintenance(self, enable: bool, reason: str = "draining before shutdown") -> bool:
        """Maintenance adds a critical check: health queries and the gateway drop the instance."""
        try:
            found = self.client.agent.service.maintenance(self.instance_id, "true" if enable else "false", reason)
        except Exception as error:  # noqa: BLE001
            self._consul_failed("maintenance", error)
            return False
        self._consul_back()
        if not found:
            log_event(logging.WARNING, "registrar.maintenance_unknown_instance", service_id=self.instance_id)
            return False
        log_event(logging.INFO, "registrar.maintenance", service_id=self.instance_id, enable=enable, reason=reason)
        return True

    def is_passing(self) -> bool:
        """Whether Consul's health endpoint still lists this instance as passing."""
        _, entries = self.client.health.service(self.config.service_name, passing=True)
        return any(entry["Service"]["ID"] == self.instance_id for entry in entries or [])

    def wait_until_not_passing(self, timeout: float) -> float | None:
        """Seconds until Consul stopped listing the instance as passing; None if not seen in time."""

        def not_passing() -> bool:
            try:
                return not self.is_passing()
            except Exception as error:  # noqa: BLE001
                self._consul_failed("health", error)
                return False

        return poll(not_passing, timeout, POLL_SECONDS, sleep=self._sleep, clock=self._clock)

    def drain(self, in_flight_wait: float | None = None) -> float | None:
        """Mark out, wait until Consul shows it, then keep serving `in_flight_wait` s for the gateway.

        The gateway renderer and nginx reload need about a second after Consul changes; until
        then requests still arrive and must be answered. Returns the seconds Consul took to stop
        listing the instance as passing (None if unconfirmed). The caller stops the server after.
        """
        grace = self.config.drain_seconds if in_flight_wait is None else in_flight_wait
        with self._lock:
            self._draining = True
            port = self._port
        if port is None:
            log_event(logging.INFO, "registrar.drain_skipped", service_id=self.instance_id, reason="never registered")
            return None
        started = self._clock()
        dropped_after = None
        if self.set_maintenance(True):
            dropped_after = self.wait_until_not_passing(timeout=max(grace, 1.0))
        log_event(
            logging.INFO,
            "registrar.drain_marked_out",
            service_id=self.instance_id,
            consul_dropped_after=None if dropped_after is None else round(dropped_after, 3),
            grace=grace,
        )
        self._sleep(grace)
        log_event(
            logging.INFO, "registrar.drained", service_id=self.instance_id, seconds=round(self._clock() - started, 3)
        )
        return dropped_after

    def deregister(self) -> bool:
        """Remove the instance (and its checks) from the agent; it is never re-registered after."""
        with self._lock:
            self._retired = True
        try:
            found = self.client.agent.service.deregister(self.instance_id)
        except Exception as error:  # noqa: BLE001
            self._consul_failed("deregister", error)
            return False
        self._consul_back()
        log_event(logging.INFO, "registrar.deregistered", service_id=self.instance_id, was_known=bool(found))
        return bool(found)

    def start_resync(self) -> Resync:
        """Background re-registration every resync_seconds; the caller stops it."""
        return Resync(self.ensure_registered, self.config.resync_seconds).start()

    def _consul_failed(self, operation: str, error: Exception) -> None:
        """Warn once per outage (then debug) so a long Consul outage does not flood the log."""
        level = logging.WARNING if self._consul_ok else logging.DEBUG
        self._consul_ok = False
        log_event(
            level,
            "registrar.consul_error",
            operation=operation,
            service_id=self.instance_id,
            consul=self.config.consul_url,
            error=f"{type(error).__name__}: {error}",
        )

    def _consul_back(self) -> None:
        if not self._consul_ok:
            self._consul_ok = True
            log_event(
                logging.INFO, "registrar.consul_reachable", consul=self.config.consul_url, service_id=self.instance_id
            )
