"""How often SIGKILL leaves a client with a response head and no body: stock gunicorn vs WholeResponse.

A gateway can retry a request whose worker died before answering, but not one whose response
head it has already passed on. This script counts both outcomes on a real gunicorn (gthread)
instance whose worker process is killed again and again under load, with stock responses and
with worker/whole_response.py, interleaved in rounds so both see the same machine.

    .venv/bin/python -m bench.kill_midresponse [--kills 40] [--rounds 3]

Traffic goes to 127.0.0.1 only; every loop is bounded by count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import falcon

from scripts.localcluster import child_pids
from scripts.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps({"entities": [{"type": "PER", "start": i, "end": i + 2, "span": "李强"} for i in range(8)]})
WHOLE_ENV = "MIDRESPONSE_WHOLE"


class Answer:
    """Holds the GIL for a while, as the real app's pre- and post-processing does."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        sum(i * i for i in range(3000))
        resp.text = BODY
        resp.content_type = falcon.MEDIA_JSON


def make_app() -> falcon.App:
    """The app a killed worker serves; installs WholeResponse when the variant asks for it."""
    if os.environ.get(WHOLE_ENV) == "1":
        from worker.whole_response import install

        install()
    app = falcon.App()
    app.add_route("/", Answer())
    return app


def one_request(port: int) -> str:
    """ok, no-head (the worker died before answering: retryable) or broken (head without the whole body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=b'{"text":"x"}', headers={"Content-Type": "application/json"})
        try:
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            return "no-head"
        try:
            body = response.read()
        except (OSError, http.client.HTTPException):
            return "broken"
        return "ok" if body == BODY.encode() else "broken"
    except OSError:
        return "no-head"
    finally:
        conn.close()


def run_variant(whole: bool, kills: int, clients: int, max_seconds: float) -> Counter:
    """Start gunicorn, keep `clients` threads sending, SIGKILL its worker `kills` times; count outcomes."""
    port = free_port()
    env = {**os.environ, WHOLE_ENV: "1" if whole else "0", "PYTHONPATH": str(REPO_ROOT)}
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "error",
            "bench.kill_midresponse:make_app()",
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outcomes: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds

    def send() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            outcome = one_request(port)
            with lock:
                outcomes[outcome] += 1
            if outcome == "no-head":
                time.sleep(0.01)  # the worker is being replaced

    def serving() -> bool:
        return one_request(port) == "ok"

    try:
        while not serving():
            if time.monotonic() > deadline or master.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        senders = [threading.Thread(target=send, daemon=True) for _ in range(clients)]
        for thread in senders:
            thread.start()
        done = 0
        while done < kills and time.monotonic() < deadline:
            time.sleep(0.3)  # let traffic flow through the fresh worker first
            for pid in child_pids(master.pid):
                os.kill(pid, signal.SIGKILL)
            done += 1
            while not child_pids(master.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        stop.set()
        for thread in senders:
            thread.join(timeout=10)
        outcomes["kills"] = done
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            master.kill()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="SIGKILLs per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--max-seconds", type=float, default=120, help="bound per variant per round")
    args = parser.parse_args()
    totals = {"stock": Counter(), "whole": Counter()}
    for round_no in range(1, args.rounds + 1):
        for name in ("stock", "whole"):
            counts = run_variant(name == "whole", args.kills, args.clients, args.max_seconds)
            totals[name].update(counts)
            print(f"round {round_no} {name:5}: {dict(counts)}", flush=True)
    print()
    print("| responses | kills | requests | ok | died before the head (retryable) | head without body |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, counts in totals.items():
        requests = counts["ok"] + counts["no-head"] + counts["broken"]
        print(
            f"| {name} | {counts['kills']} | {requests} | {counts['ok']} | {counts['no-head']} | {counts['broken']} |"
        )


if __name__ == "__main__":
    main()
