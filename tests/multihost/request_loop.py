"""A bounded, retrying client run inside a host namespace; one JSON line per request.

    ip netns exec NS python -m tests.multihost.request_loop URL OUT --max-seconds 60 --stop-file F

A request is retried on another attempt (up to --attempts, --backoff apart) when it gets no
answer or a 5xx; the line records the first attempt's result and the final one. Times are
time.monotonic(), the same clock in every namespace, so the test can line them up with the
moments it cut a link or killed a server.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import requests

PAYLOAD = {"text": "张三在北京的清华大学工作。"}


def attempt(session: requests.Session, url: str, timeout: float) -> tuple[int | None, str | None]:
    """(status, worker id) of one POST; status None when no answer came."""
    try:
        response = session.post(url, json=PAYLOAD, timeout=timeout, headers={"Connection": "close"})
        return response.status_code, response.headers.get("X-Worker-Id")
    except requests.RequestException:
        return None, None


def run(
    url: str,
    out: Path,
    max_seconds: float,
    max_requests: int,
    stop_file: Path,
    attempts: int,
    backoff: float,
    timeout: float,
    pause: float,
) -> None:
    deadline = time.monotonic() + max_seconds
    session = requests.Session()
    with open(out, "a", buffering=1) as sink:
        for _ in range(max_requests):
            if time.monotonic() > deadline or stop_file.exists():
                break
            sent = time.monotonic()
            first = final = None
            worker = None
            tries = 0
            while tries < attempts:
                tries += 1
                final, worker = attempt(session, url, timeout)
                first = final if tries == 1 else first
                if final is not None and final < 500:
                    break
                time.sleep(backoff)
            sink.write(
                json.dumps(
                    {
                        "sent": sent,
                        "took": time.monotonic() - sent,
                        "first": first,
                        "status": final,
                        "tries": tries,
                        "worker": worker,
                    }
                )
                + "\n"
            )
            time.sleep(pause)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--backoff", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.02)
    args = parser.parse_args()
    os.environ.setdefault("NO_PROXY", "*")
    run(
        args.url,
        args.out,
        args.max_seconds,
        args.max_requests,
        args.stop_file,
        args.attempts,
        args.backoff,
        args.timeout,
        args.pause,
    )


if __name__ == "__main__":
    main()
