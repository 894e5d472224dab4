"""Fuzz a worker from its own OpenAPI document with schemathesis: count 5xx, transport errors and crashes.

    .venv/bin/python -m bench.fuzz_api [--cases 10000] [--url http://127.0.0.1:PORT]

Without --url it starts a local cluster and fuzzes one worker directly (the gateway's rate
limit would otherwise answer most of the cases). Positive and negative cases, spread evenly
over every operation in the document.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode


@dataclass
class FuzzResult:
    """What the generated requests got back."""

    by_status: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)
    transport_errors: Counter = field(default_factory=Counter)
    non_json_errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.by_status.values()) + sum(self.transport_errors.values())


def fuzz(base_url: str, cases: int, seed: int = 0, timeout: float = 15.0) -> FuzzResult:
    """Send about `cases` generated requests to base_url, described by base_url/openapi.json."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    with_input = [op for op in operations if op.body or op.query or op.headers] or operations
    per_run = max(1, cases // (len(with_input) * len(modes)))
    result = FuzzResult()
    session = requests.Session()
    started = time.monotonic()
    for operation in operations:
        for mode in modes:
            _run(operation, mode, per_run, seed, _recorder(result, session, base_url, timeout, operation.label))
    result.seconds = time.monotonic() - started
    return result


def _recorder(
    result: FuzzResult, session: requests.Session, base_url: str, timeout: float, label: str
) -> Callable[[schemathesis.Case], None]:
    def call(case: schemathesis.Case) -> None:
        result.by_operation[label] += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=timeout)
        except requests.RequestException as error:
            result.transport_errors[type(error).__name__] += 1
            return
        result.by_status[response.status_code] += 1
        if response.status_code >= 500 and not _documented_refusal(label, response.status_code):
            result.server_errors.append(f"{label} {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and not _header(response, "content-type").startswith("application/json"):
            result.non_json_errors.append(
                f"{label} {response.status_code} {_header(response, 'server')} {response.text[:80]!r}"
            )

    return call


def _header(response: schemathesis.Response, name: str) -> str:
    """schemathesis keeps headers as lower-case names with lists of values."""
    value = response.headers.get(name) or response.headers.get(name.title()) or ""
    return value[0] if isinstance(value, list) else value


def _documented_refusal(label: str, status: int) -> bool:
    """/health?id=<another instance> is 503 by contract: a dead instance must not pass on a newcomer."""
    return label == "GET /health" and status == 503


def _run(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    seed: int,
    call: Callable[[schemathesis.Case], None],
) -> None:
    """Generate only (nothing fails inside, so there is nothing to shrink)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def generated(case: schemathesis.Case) -> None:
        call(case)

    generated._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
    try:
        generated()
    except Unsatisfiable:
        pass  # nothing in this operation can be made invalid (e.g. GET /health has no inputs)


def worker_processes(port: int) -> tuple[int, ...]:
    """PIDs listening on a port's worker (the gunicorn children): a crash changes them."""
    import subprocess

    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return tuple(sorted({int(part.split(",")[0]) for part in out.split("pid=")[1:]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--url", help="a running worker's base URL (default: start a local cluster)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.url:
        return _report(fuzz(args.url, args.cases, args.seed), None)
    from bench.localrun import local_cluster

    with local_cluster(1) as cluster:
        worker = next(iter(cluster.workers().values()))
        url = f"http://127.0.0.1:{worker.port}"
        before = worker_processes(worker.port)
        result = fuzz(url, args.cases, args.seed)
        health = requests.get(f"{url}/health", timeout=5).status_code
        after = worker_processes(worker.port)
        return _report(result, {"health_after": health, "same_processes": before == after, "pids": before})


def _report(result: FuzzResult, worker: dict | None) -> int:
    print(f"{result.total} requests in {result.seconds:.0f}s")
    print("by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(result.by_operation.items())))
    print("by status:    " + ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items())))
    print(
        f"5xx: {len(result.server_errors)}; transport errors: {dict(result.transport_errors)}; "
        f"non-JSON 4xx: {len(result.non_json_errors)}"
    )
    for line in result.server_errors[:10] + result.non_json_errors[:10]:
        print("  " + line)
    if worker:
        print(f"worker after: health {worker['health_after']}, same processes {worker['same_processes']}")
    bad = result.server_errors or result.transport_errors or (worker and not worker["same_processes"])
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
