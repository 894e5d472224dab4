"""Start one program of the local cluster in place of the supervisor's child: `python -m scripts.localmode.launch`.

The supervisor runs every program through this launcher, which then becomes the program
(exec, same pid, so the supervisor's stop signals reach the program itself). Before that it
clears what an earlier run of the same program left behind: processes whose working directory is
this program's (nginx workers whose master was killed keep serving a frozen upstream and hold the
gateway port; a killed gunicorn master's workers hold the worker port). Only processes started in
this directory match, so nothing the cluster did not start is touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from registrar.retrying import poll
from scripts.localmode.listeners import take_listeners
from scripts.localmode.procs import command_of, listeners, pids_under, port_listened, stop_pids

PORT_POLL_SECONDS = 0.02


def _say(message: str) -> None:
    print(f"launch: {message}", file=sys.stderr, flush=True)


def clear_leftovers(directory: Path, sig: int, timeout: float) -> list[int]:
    """Stop the processes an earlier run of this program left in its directory; returns those stopped."""
    leftovers = pids_under(directory, exclude={os.getpid()})
    if leftovers:
        _say(
            f"stopping {len(leftovers)} leftover process(es) of an earlier run: "
            + "; ".join(f"{pid} {command_of(pid)}" for pid in leftovers)
        )
        stuck = stop_pids(leftovers, sig, timeout)
        if stuck:
            _say(f"could not stop {stuck}")
    return leftovers


def wait_ports_free(ports: list[int], timeout: float) -> list[int]:
    """Wait until nothing listens on the ports; returns the ports still taken at the deadline."""
    taken = list(ports)

    def all_free() -> bool:
        taken[:] = [port for port in ports if port_listened(port)]
        return not taken

    poll(all_free, timeout, PORT_POLL_SECONDS)
    return taken


def choose_port(candidates: list[int], last_file: Path) -> int:
    """A free port of candidates, not the one the last start used when another is free.

    A restarted worker listens on another port than the instance it replaces: the gateway may
    still route to the old address for a second, and there a refused connection is retried on
    another worker at once, where a new process that has bound the same port but not yet loaded
    its model would hold the request until it has.
    """
    try:
        last = int(last_file.read_text().strip())
    except (OSError, ValueError):
        last = None
    free = [port for port in candidates if not port_listened(port)]
    fresh = [port for port in free if port != last]
    port = (fresh or free or candidates)[0]
    last_file.write_text(f"{port}\n")
    return port


def record_start(starts_file: Path | None) -> None:
    """One line per start, so status can show how often the supervisor restarted the program."""
    if starts_file is None:
        return
    starts_file.parent.mkdir(parents=True, exist_ok=True)
    with open(starts_file, "a") as out:
        out.write(f"{time.time():.3f}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", default="TERM", help="how to stop leftovers (TERM, QUIT, INT)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds leftovers get to exit")
    parser.add_argument("--port", type=int, action="append", default=[], help="a port the program listens on")
    parser.add_argument(
        "--token-file", type=Path, help="Consul token for CONSUL_HTTP_TOKEN (kept off the command line)"
    )
    parser.add_argument("--starts-file", type=Path)
    parser.add_argument("--bind-env", help="export HOST:PORT in this variable, PORT one of --bind-port")
    parser.add_argument("--bind-host", default="127.0.0.1")
    parser.add_argument(
        "--bind-port",
        type=int,
        action="append",
        default=[],
        help="ports to alternate between across starts (see choose_port)",
    )
    parser.add_argument(
        "--inherit-listeners",
        action="store_true",
        help="hand the leftovers' listening sockets on --port to the program (nginx's NGINX variable)",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the program and its arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        _say("no program given")
        return 2
    record_start(args.starts_file)
    env = dict(os.environ)
    inherited: list[int] = []
    if args.inherit_listeners:
        inherited = take_listeners(pids_under(Path.cwd(), exclude={os.getpid()}), args.port)
        if inherited:
            # Connections that arrive while the leftovers stop wait in the socket's queue for the
            # new nginx instead of being refused.
            env["NGINX"] = "".join(f"{fd};" for fd in inherited)
            _say(f"took over {len(inherited)} listening socket(s) of the earlier run")
    clear_leftovers(Path.cwd(), getattr(signal, f"SIG{args.signal}"), args.timeout)
    ports = list(args.port)
    if args.bind_env:
        port = choose_port(args.bind_port, Path.cwd() / "port")
        env[args.bind_env] = f"{args.bind_host}:{port}"
        ports.append(port)
    taken = [] if inherited else wait_ports_free(ports, args.timeout)
    if taken:
        holders = {port: listeners(port) for port in taken}
        _say(
            "ports still taken, not starting: "
            + "; ".join(
                f"{port} by {', '.join(f'{pid} {command_of(pid)}' for pid in pids) or 'another user'}"
                for port, pids in holders.items()
            )
        )
        return 1
    if args.token_file is not None:
        try:
            env["CONSUL_HTTP_TOKEN"] = args.token_file.read_text().strip()
        except OSError as error:
            _say(f"cannot read the Consul token: {error}")
            return 1
    sys.stdout.flush()
    os.execvpe(command[0], command, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
