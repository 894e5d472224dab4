"""After supervisord has stopped: stop what it no longer watched, and check that nothing is left."""

from __future__ import annotations

from typing import Callable

from scripts.localmode.procs import command_of, listeners, pids_under, port_listened, stop_pids
from scripts.localmode.supervisor import Supervisor

LEFTOVER_STOP_SECONDS = 10.0


def sweep(supervisor: Supervisor, ports: list[int], say: Callable[[str], None]) -> None:
    """Stop the cluster's processes that still run (their working directory marks them) and check.

    Raises RuntimeError naming what could not be stopped; a port held by a process the cluster did
    not start is only noted.
    """
    work = supervisor.run_dir / "work"
    leftovers = pids_under(work)
    daemon = supervisor.daemon_pid()
    if daemon is not None:
        leftovers.append(daemon)
    if leftovers:
        say(
            "stopping what the supervisor no longer watched: "
            + "; ".join(f"{pid} {command_of(pid)}" for pid in leftovers)
        )
        stop_pids(leftovers, timeout=LEFTOVER_STOP_SECONDS)
    remaining = pids_under(work)
    held = {port: listeners(port) for port in ports if port_listened(port)}
    if remaining:
        raise RuntimeError(
            "left running: "
            + "; ".join(f"pid {pid} ({command_of(pid)})" for pid in remaining)
            + "".join(f"; port {port} listened on" for port in held)
        )
    for port, holders in held.items():  # nothing of ours runs: whoever listens there, we did not start
        say(
            f"note: port {port} is in use by {', '.join(command_of(pid) for pid in holders) or 'another user'}, "
            "which this cluster did not start"
        )
