"""One worker instance under 8, 32 and 128 concurrent keep-alive clients: refuse-at-once vs queue deadline.

Starts ONE real gunicorn worker instance (worker/gunicorn.conf.py, no Consul) on a
loopback port for each variant (all of a backend's variants are up at once, and each
level runs on them back to back) and holds N closed-loop keep-alive clients on it for
a bounded time per level; every request is a different MSRA test sentence and the
result cache is off, so every request reaches the model. Per level it prints
answered/s, 429s, other failures, p50/p95/p99 of the answered requests, the worker's
peak RSS (master + children, from /proc) and the CPU the worker and this load
generator used. Variants run side by side in one run:

- old: NER_QUEUE_DEADLINE_MS=0 with the previous thread count (4): a request that
  finds the NER_MAX_INFLIGHT slots busy is refused at once;
- the queue deadline (default 500 ms) with the current defaults.

`--startup` measures instead how long a worker takes from start to its first 200 on
/health: raner, onnx with the exported graph cached, onnx exporting into an empty cache.

    .venv/bin/python -m bench.worker_concurrency [--seconds 8] [--levels 8 32 128]
        [--deadline-ms 0 500] [--backends onnx raner]
    .venv/bin/python -m bench.worker_concurrency --startup [--repeat 3]

Traffic goes to 127.0.0.1 only; each level is bounded in time, each start-up by a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from scripts.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF = REPO_ROOT / "worker" / "gunicorn.conf.py"
OLD_THREADS = 4  # the thread count before admission by deadline (NER_MAX_INFLIGHT was threads - 1 = 3)
READY_TIMEOUT = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the worker under test


@dataclass
class Worker:
    """A gunicorn master and its worker process, started with the given NER_* settings."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started: float = 0.0

    def start(self) -> "Worker":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NER_", "_NER_", "PROMETHEUS_MULTIPROC"))}
        env.update(
            {
                "NER_REGISTER": "0",
                "NER_BIND": f"127.0.0.1:{self.port}",
                "NER_PROCESSES": "1",
                "NER_RESULT_CACHE_SIZE": "0",
                "PYTHONPATH": str(REPO_ROOT),
                **self.env,
            }
        )
        self.started = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(CONF), "worker.app:get_app()"],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_ready(self) -> float:
        """Seconds from start to the first 200 on /health."""
        deadline = self.started + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"worker not ready within {READY_TIMEOUT:.0f}s; see {self.log}")

    def pids(self) -> list[int]:
        """The master and its children (the gunicorn worker process)."""
        master = self.proc.pid
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == master:
                    children.append(int(entry.name))
        return [master, *children]

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=5)


# ---------------------------------------------------------------- closed-loop keep-alive clients


@dataclass
class LevelResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # answered (200) requests, seconds
    refused: int = 0
    failed: int = 0
    reconnects: int = 0
    peak_rss: int = 0
    worker_cpu: float = 0.0
    client_cpu: float = 0.0
    health: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds) per check

    @property
    def health_max_ms(self) -> float:
        return max((seconds for _, seconds in self.health), default=float("nan")) * 1000

    @property
    def health_not_200(self) -> int:
        return sum(status != 200 for status, _ in self.health)

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _client(port: int, sentences: list[str], start: int, step: int, stop_at: float, result: LevelResult) -> None:
    """One keep-alive connection sending its next request as soon as the last one is answered."""
    index = start
    reader = writer = None
    try:
        while time.monotonic() < stop_at:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = json.dumps({"text": sentences[index % len(sentences)]}, ensure_ascii=False).encode()
            index += step
            head = (
                f"POST /v1/ner HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            sent = time.monotonic()
            try:
                writer.write(head + body)
                status, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.failed += 1
                result.reconnects += 1
                writer.close()
                reader = writer = None
                continue
            if status == 200:
                result.latencies.append(time.monotonic() - sent)
            elif status == 429:
                result.refused += 1
            else:
                result.failed += 1
            if close:
                result.reconnects += 1
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the server closes the connection; the body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, close


async def _check_health(port: int, stop_at: float, result: LevelResult) -> None:
    """What Consul does: a new connection and GET /health every 0.5 s (it gives up after 500 ms)."""
    while time.monotonic() < stop_at:
        sent = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, _ = await asyncio.wait_for(_read_response(reader), 5)
            writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            status = 0
        result.health.append((status, time.monotonic() - sent))
        await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - sent)))


async def _run_level(worker: Worker, sentences: list[str], clients: int, seconds: float, offset: int) -> LevelResult:
    result = LevelResult(clients, seconds)
    cpu_before, own_before = worker.cpu_seconds(), _own_cpu()
    started = time.monotonic()
    stop_at = started + seconds
    tasks = [
        asyncio.create_task(_client(worker.port, sentences, offset + i, clients, stop_at, result))
        for i in range(clients)
    ]
    tasks.append(asyncio.create_task(_check_health(worker.port, stop_at, result)))
    while time.monotonic() < stop_at:
        result.peak_rss = max(result.peak_rss, worker.rss_bytes())
        await asyncio.sleep(0.5)
    await asyncio.gather(*tasks)
    result.seconds = time.monotonic() - started
    result.peak_rss = max(result.peak_rss, worker.rss_bytes())
    result.worker_cpu = worker.cpu_seconds() - cpu_before
    result.client_cpu = _own_cpu() - own_before
    return result


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class Variant:
    backend: str
    deadline_ms: float
    threads: int | None = None  # None: the default (the old count with deadline 0)

    @property
    def env(self) -> dict[str, str]:
        env = {"NER_BACKEND": self.backend, "NER_QUEUE_DEADLINE_MS": f"{self.deadline_ms:g}"}
        threads = self.threads or (OLD_THREADS if self.deadline_ms == 0 else None)
        if threads:
            env["NER_THREADS"] = str(threads)
        return env

    @property
    def label(self) -> str:
        if self.deadline_ms == 0 and not self.threads:
            return f"{self.backend}, deadline 0 (old: {OLD_THREADS} threads, refuse at once)"
        threads = f", {self.threads} threads" if self.threads else ""
        return f"{self.backend}, deadline {self.deadline_ms:g} ms{threads}"


def run_backend(
    variants: list[Variant], sentences: list[str], levels: list[int], seconds: float, log_dir: Path
) -> list[tuple[Variant, LevelResult]]:
    """All variants' workers up at once; each level runs on them back to back, so they share the machine's state."""
    workers: dict[Variant, Worker] = {}
    rows = []
    try:
        for variant in variants:
            name = f"{variant.backend}-{variant.deadline_ms:g}-{variant.threads or 'default'}"
            workers[variant] = Worker(variant.env, log_dir / f"{name}.log").start()
        for variant, worker in workers.items():
            ready = worker.wait_ready()
            print(
                f"# {variant.label}: ready {ready:.1f}s after start, idle RSS {worker.rss_bytes() / 2**20:.0f} MiB",
                flush=True,
            )
        offset = 0
        for clients in levels:
            for variant, worker in workers.items():
                result = asyncio.run(_run_level(worker, sentences, clients, seconds, offset))
                offset += len(result.latencies) + result.refused + result.failed
                rows.append((variant, result))
                print(
                    f"  {variant.label}, {clients} clients: {len(result.latencies) / result.seconds:.1f} "
                    f"answered/s, {result.refused} x 429",
                    flush=True,
                )
    finally:
        for worker in workers.values():
            worker.stop()
    return rows


def print_table(rows: list[tuple[Variant, LevelResult]]) -> None:
    print()
    print(
        "| variant | clients | answered/s | 429 | 429 % | other failures | p50 ms | p95 ms | p99 ms "
        "| peak RSS MiB | worker CPU | generator CPU | /health max ms | /health not 200 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for variant, r in rows:
        total = len(r.latencies) + r.refused + r.failed
        share = 100 * r.refused / total if total else 0.0
        print(
            f"| {variant.label} | {r.clients} | {len(r.latencies) / r.seconds:.1f} | {r.refused} | "
            f"{share:.1f} | {r.failed} | {r.quantile(0.5):.1f} | {r.quantile(0.95):.1f} | "
            f"{r.quantile(0.99):.1f} | {r.peak_rss / 2**20:.0f} | {r.worker_cpu / r.seconds:.2f} | "
            f"{r.client_cpu / r.seconds:.2f} | {r.health_max_ms:.0f} | {r.health_not_200}/{len(r.health)} |"
        )
    print(
        "\nworker CPU / generator CPU: cores used on average over the level (2 cores in all). /health: "
        "a new connection every 0.5 s, as Consul checks (its timeout is 500 ms)."
    )


def run_startup(repeat: int, log_dir: Path) -> None:
    """Start -> ready for raner, onnx with a warm export cache, onnx with an empty one."""
    cases: dict[str, list[float]] = {"raner": [], "onnx, cached export": [], "onnx, empty cache (exports)": []}
    for _ in range(repeat):
        for name in cases:
            env = {"NER_BACKEND": "raner" if name == "raner" else "onnx"}
            scratch = None
            if "empty" in name:
                scratch = tempfile.TemporaryDirectory(prefix="ner-export-")
                env["NER_CACHE_DIR"] = scratch.name
            worker = Worker(env, log_dir / "startup.log").start()
            try:
                cases[name].append(worker.wait_ready())
            finally:
                worker.stop()
                if scratch is not None:
                    scratch.cleanup()
        print("  " + ", ".join(f"{name} {times[-1]:.1f}s" for name, times in cases.items()), flush=True)
    raner = statistics.median(cases["raner"])
    print()
    print("| backend | start → ready, median s | runs | vs raner |")
    print("|---|---:|---|---:|")
    for name, times in cases.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} | {', '.join(f'{t:.2f}' for t in times)} | {median - raner:+.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 32, 128], help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each level")
    parser.add_argument(
        "--deadline-ms",
        type=float,
        nargs="+",
        default=[0, 500],
        help="variants; 0 runs the old rule with the old thread count",
    )
    parser.add_argument("--backends", nargs="+", default=["onnx", "raner"], choices=["onnx", "raner"])
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[], help="extra variants: the default deadline with these NER_THREADS"
    )
    parser.add_argument("--startup", action="store_true", help="measure start -> ready instead")
    parser.add_argument("--repeat", type=int, default=3, help="start-ups per backend with --startup")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="worker-concurrency-"))
    print(f"# load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; worker logs in {log_dir}")
    if args.startup:
        run_startup(args.repeat, log_dir)
        return
    from tests.support.msra import msra_test_sentences

    sentences = msra_test_sentences()
    rows = []
    for backend in args.backends:
        variants = [Variant(backend, deadline) for deadline in args.deadline_ms]
        variants += [Variant(backend, max(args.deadline_ms), threads) for threads in args.threads]
        rows += run_backend(variants, sentences, args.levels, args.seconds, log_dir)
    print_table(rows)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
