"""gunicorn server hooks: the worker registers itself, drains before it stops, and leaves Consul on exit.

Use from a gunicorn config file:

    from registrar.hooks import on_starting, when_ready, on_exit

They run in the gunicorn master (the arbiter), never in the forked worker processes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from registrar.config import RegistrarConfig, load_config
from registrar.identity import new_instance_id
from registrar.logs import ensure_logging, log_event
from registrar.network import is_loopback, is_wildcard
from registrar.registration import Registrar
from registrar.resync import Resync

INSTANCE_ID_ENV = "NER_INSTANCE_ID"
DRAINED_SIGNALS = ("handle_term", "handle_int")


@dataclass
class HookState:
    """What the hooks share within one gunicorn master."""

    config: RegistrarConfig | None = None
    instance_id: str | None = None
    registrar: Registrar | None = None
    resync: Resync | None = None
    drained: bool = False


state = HookState()


def on_starting(server: Any) -> None:
    """Choose the instance ID before any fork, so every worker process sends the same X-Worker-Id."""
    global state
    ensure_logging()
    config = load_config()
    instance_id = new_instance_id(config.service_name, config.hostname)
    os.environ[INSTANCE_ID_ENV] = instance_id
    registrar = Registrar(config, instance_id) if config.register else None
    state = HookState(config=config, instance_id=instance_id, registrar=registrar)
    log_event(
        logging.INFO,
        "registrar.instance",
        service_id=instance_id,
        register=config.register,
        consul=config.consul_url,
        advertise_address=config.advertise_address,
    )


def bound_address(server: Any) -> tuple[str | None, int | None]:
    """(host, port) of gunicorn's first listener, which knows the real port when bound to port 0."""
    listeners = getattr(server, "LISTENERS", None) or []
    if not listeners:
        return None, None
    try:
        name = listeners[0].getsockname()
    except (OSError, AttributeError):
        return None, None
    if isinstance(name, tuple) and len(name) >= 2:
        return str(name[0]), int(name[1])
    return None, None  # a unix socket: nothing other hosts can reach


def registration_target(config: RegistrarConfig, host: str | None, port: int | None) -> tuple[str | None, int | None]:
    """The (address override, port) to advertise given what gunicorn bound.

    A specific non-loopback bind address is the only one the worker answers on, so it wins over
    the routed default; NER_ADVERTISE_ADDRESS / NER_ADVERTISE_PORT win over everything.
    """
    address = None
    if not config.advertise_address_explicit and host and not is_wildcard(host) and not is_loopback(host):
        address = host
    elif host and is_loopback(host) and not config.consul_is_local and not config.advertise_address_explicit:
        log_event(
            logging.WARNING,
            "registrar.bound_to_loopback",
            bind=host,
            consul=config.consul_url,
            advertised=config.advertise_address,
            hint="bind 0.0.0.0 or the advertised address so other hosts can connect",
        )
    return address, config.advertise_port or port


def when_ready(server: Any) -> None:
    """Register with the bound port, start resync, and make SIGTERM/SIGINT drain first."""
    if state.config is None:
        on_starting(server)
    config, registrar = state.config, state.registrar
    assert config is not None
    if registrar is None:
        log_event(logging.INFO, "registrar.disabled", service_id=state.instance_id)
        return
    host, bound_port = bound_address(server)
    address, port = registration_target(config, host, bound_port)
    if port is None:
        log_event(
            logging.ERROR,
            "registrar.unknown_port",
            service_id=registrar.instance_id,
            hint="set NER_ADVERTISE_PORT when gunicorn listens on a unix socket",
        )
        return
    registrar.register(port, address)  # a failure is logged; the resync thread keeps trying
    state.resync = registrar.start_resync()
    install_drain(server, drain_once)


def drain_once() -> None:
    """Drain at most once per process, whichever signal comes first; never raise."""
    if state.drained or state.registrar is None:
        return
    state.drained = True
    try:
        state.registrar.drain()
    except Exception:  # noqa: BLE001 - shutting down must go on whatever happens here
        log_event(logging.ERROR, "registrar.drain_failed", exc_info=True)


def install_drain(server: Any, drain: Callable[[], None]) -> None:
    """Wrap the arbiter's handle_term/handle_int on the instance: drain, then the original handler.

    gunicorn's signal handler only queues the signal; the arbiter's main loop then calls
    `getattr(self, "handle_" + name)()`, so an instance attribute takes precedence over the
    class method. Draining there blocks only the master loop: the worker processes keep
    serving new and in-flight requests until the original handler closes the listeners and
    stops them gracefully (graceful_timeout).
    """
    for name in DRAINED_SIGNALS:
        original = getattr(server, name, None)
        if original is None or getattr(original, "_registrar_drain", False):
            continue

        def drained_then_original(original: Callable[[], Any] = original) -> Any:
            drain()
            return original()

        drained_then_original._registrar_drain = True  # type: ignore[attr-defined]
        setattr(server, name, drained_then_original)


def on_exit(server: Any) -> None:
    """Stop resync first (so it cannot re-register), then deregister; best effort, bounded time."""
    if state.resync is not None:
        state.resync.stop(timeout=2.0)
        state.resync = None
    if state.registrar is not None:
        state.registrar.deregister()
