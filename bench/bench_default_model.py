"""The default model end to end: the onnx backend against the ModelScope pipeline, side by side in one run.

    .venv/bin/python -m bench.bench_default_model             # the figures, about 7 minutes
    .venv/bin/python -m bench.bench_default_model --dry-run   # tiny sizes: proves it runs

Four local clusters with `make up` defaults (2 workers each, gateway rate limit off so the
generator is not what refuses): the default model on the default backend (onnx), the same
model with NER_BACKEND=raner (the reference pipeline), the previous default model
(models/raner-msra-lstm) and the default's bigru-crf teacher (models/lac-msra-bigru) on onnx. Each round runs an 8-user closed loop of never repeated
MSRA sentences (Locust FastHttpUser, no think time) on one cluster while the others idle, in
turn, so all see the same machine; the table gives each cluster's rounds and their mean.
Before that it times what a worker's start spends on the model, in a fresh process each time
(imports included): the onnx backend with an empty cache (the graph exported) and with the
cached export, which is what every start after the first one pays, for both models; and
each cluster's start (both workers passing in Consul).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Sequence

from bench.bench_admission import environment, locust_step
from bench.load import REPO_ROOT
from bench.localrun import local_cluster
from scripts.localcluster import LocalCluster
from worker.config import DEFAULT_MODEL_DIR

WORKERS = 2
PREVIOUS_MODEL = REPO_ROOT / "models" / "raner-msra-lstm"
TEACHER_MODEL = REPO_ROOT / "models" / "lac-msra-bigru"
COMMON_ENV = {"NER_GATEWAY_RATE": "off"}


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    cluster: LocalCluster | None = None
    start_seconds: float = 0.0

    @property
    def url(self) -> str:
        return self.cluster.config.gateway_url


def variants() -> list[Variant]:
    default = str(os.environ.get("NER_MODEL_DIR") or DEFAULT_MODEL_DIR)
    return [
        Variant("default model, onnx (default backend)", {"NER_MODEL_DIR": default}),
        Variant("default model, raner (reference)", {"NER_MODEL_DIR": default, "NER_BACKEND": "raner"}),
        Variant(f"{PREVIOUS_MODEL.name} (previous default), onnx", {"NER_MODEL_DIR": str(PREVIOUS_MODEL)}),
        Variant(f"{TEACHER_MODEL.name} (its teacher), onnx", {"NER_MODEL_DIR": str(TEACHER_MODEL)}),
    ]


LOAD_SNIPPET = """
import sys, time
started = time.monotonic()
from worker.backends import load_backend
load_backend("onnx", sys.argv[1], cache_dir=sys.argv[2])
print(time.monotonic() - started)
"""


def backend_load_seconds(model_dir: str, cache_dir: str) -> float:
    """Seconds a fresh process takes to import the backend and load (or export) a model, probe included."""
    result = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, model_dir, cache_dir], cwd=REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
                            check=True, timeout=600)  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def load_table(models: Sequence[str]) -> str:
    lines = ["| model | onnx load, empty cache (export) | onnx load, cached export (every later start) |",
             "|---|---:|---:|"]  # fmt: skip
    for model in models:
        with tempfile.TemporaryDirectory(prefix="ner-load-") as cache:
            cold = backend_load_seconds(model, cache)
            warm = statistics.median(backend_load_seconds(model, cache) for _ in range(3))
        lines.append(f"| {os.path.basename(model)} | {cold:.1f} s | {warm:.1f} s |")
    return "\n".join(lines)


def start(stack: ExitStack, variant: Variant) -> Variant:
    """One cluster with the variant's variables (its processes keep them), timed to serving."""
    unset = ["NER_BACKEND"] if "NER_BACKEND" not in variant.env else []
    started = time.monotonic()
    with environment({**COMMON_ENV, **variant.env}, unset):
        cluster = stack.enter_context(local_cluster(WORKERS))
    seconds = time.monotonic() - started
    print(f"{variant.name}: up in {seconds:.1f} s at {cluster.config.gateway_url}", flush=True)
    return Variant(variant.name, variant.env, cluster, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="one 3 s round: proves the benchmark runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args(argv)
    rounds, seconds = (1, 3) if args.dry_run else (args.rounds, args.seconds)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    default = variants()[0].env["NER_MODEL_DIR"]
    loads = load_table([default, str(PREVIOUS_MODEL), str(TEACHER_MODEL)])
    print(loads, flush=True)
    answered: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    p95: dict[str, list[float]] = {}
    with ExitStack() as stack:
        started = [start(stack, variant) for variant in variants()]
        for variant in started:  # first inferences of each shape, connection pools
            locust_step(variant, "warmup", "news", args.users, 5)
        for round_number in range(1, rounds + 1):
            for variant in started:
                result = locust_step(variant, f"default-model-r{round_number}", "news", args.users, seconds).result
                answered.setdefault(variant.name, []).append(result.ok_rps)
                failures[variant.name] = failures.get(variant.name, 0) + result.requests - result.count("2xx")
                p95.setdefault(variant.name, []).append(result.p95_ms)
                print(f"round {round_number}: {variant.name}: {result.ok_rps:.1f} answered/s", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    reference = statistics.mean(answered[started[1].name])
    print("\n## What a worker's start spends on the model (fresh process, imports included; median of 3 cached)\n")
    print(loads)
    print(f"\n## {args.users} closed-loop users, uncached MSRA sentences, {rounds} x {seconds} s per cluster\n")
    print("| cluster | start to serving | answered/s per round | mean | vs raner | p95 ms | non-2xx |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for variant in started:
        rates = answered[variant.name]
        mean = statistics.mean(rates)
        print(
            f"| {variant.name} | {variant.start_seconds:.1f} s | {', '.join(f'{r:.1f}' for r in rates)} | {mean:.1f} | "
            f"{mean / reference:.2f}× | {statistics.median(p95[variant.name]):.0f} | {failures[variant.name]} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
