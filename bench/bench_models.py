"""Model-path speed, side by side in one run: ModelScope pipeline vs the onnx backend, and end to end.

    .venv/bin/python -m bench.bench_models [--default-model DIR] [--base-model DIR] [--skip-e2e]

Part 1, in this process (one model at a time, same sentences, same threads):
sentences/s and latency p50/p95 for the pipeline as-is (sequence_length 512),
the pipeline with sequence_length=128, the onnx backend FP32 and INT8, each
one request at a time and with micro-batching (concurrent client threads),
and answers from the result cache. Part 2: requests/s through the gateway
(nginx + Consul + gunicorn workers) at p95 <= 300 ms, 1 and 2 workers,
result cache off, with the load generator's own CPU. The machine may be
shared: compare the ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]

from tests.support.msra import msra_test_sentences  # noqa: E402

BASE_MODEL = REPO_ROOT / ".local" / "models" / "raner-base-random"
TINY_MODEL = REPO_ROOT / ".local" / "models" / "raner-tiny-random"
P95_BUDGET_MS = 300.0


@dataclass
class Row:
    """One measured configuration."""

    model: str
    path: str
    sentences_per_s: float
    p50_ms: float
    p95_ms: float
    count: int
    errors: int = 0
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def sequential(model: str, path: str, call: Callable[[str], object], texts: Sequence[str], note: str = "") -> Row:
    """One text at a time: latency is the service time."""
    call(texts[0])  # warm-up
    latencies, errors = [], 0
    started = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        try:
            call(text)
        except Exception:  # noqa: BLE001 - the pipeline as-is fails on some sentences
            errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return Row(model, path, len(latencies) / elapsed, percentile(latencies, 50) * 1000,
               percentile(latencies, 95) * 1000, len(texts), errors, note)  # fmt: skip


def concurrent(model: str, path: str, call: Callable[[str], object], texts: Sequence[str], clients: int,
               note: str = "") -> Row:  # fmt: skip
    """`clients` threads each sending one text at a time: what gunicorn threads do."""
    call(texts[0])
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cursor = iter(range(len(texts)))

    def client() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            t0 = time.perf_counter()
            try:
                call(texts[index])
            except Exception:  # noqa: BLE001
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return Row(model, path, len(latencies) / elapsed, percentile(latencies, 50) * 1000,
               percentile(latencies, 95) * 1000, len(texts), errors[0], note)  # fmt: skip


def pipeline_calls(model_dir: Path, threads: int) -> dict[str, Callable[[str], object]]:
    """The ModelScope NER pipeline exactly as documented, and with sequence_length=128."""
    import torch
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    torch.set_num_threads(threads)
    as_is = pipeline(Tasks.named_entity_recognition, model=str(model_dir), device="cpu")
    short = pipeline(Tasks.named_entity_recognition, model=str(model_dir), device="cpu", sequence_length=128)
    return {"pipeline as-is (seq 512)": as_is, "pipeline sequence_length=128": short}


def measure_model(label: str, model_dir: Path, texts: Sequence[str], slow_texts: Sequence[str],
                  cache_dir: Path, threads: int, clients: int) -> list[Row]:  # fmt: skip
    """Every in-process path for one model, on the same sentences."""
    from worker.backends.cache import CachedBackend
    from worker.backends.fast import FastBackend

    rows = []
    for path, call in pipeline_calls(model_dir, threads).items():
        rows.append(sequential(label, path, call, slow_texts, "torch, 1 text per call"))
        print_row(rows[-1])
    for quantize in ("fp32", "int8"):
        single = FastBackend.from_directory(model_dir, cache_dir=cache_dir, quantize=quantize, threads=threads,
                                            max_batch=1)  # fmt: skip
        rows.append(sequential(label, f"onnx {quantize}", lambda t: single.predict_batch([t]), texts,
                               "1 request at a time"))  # fmt: skip
        print_row(rows[-1])
        rows.append(concurrent(label, f"onnx {quantize}, no micro-batching", lambda t: single.predict_batch([t]),
                               texts, clients, f"{clients} client threads, max_batch 1"))  # fmt: skip
        print_row(rows[-1])
        batched = FastBackend.from_directory(model_dir, cache_dir=cache_dir, quantize=quantize, threads=threads,
                                             max_batch=16, batch_wait_ms=2.0)  # fmt: skip
        rows.append(concurrent(label, f"onnx {quantize} + micro-batching", lambda t: batched.predict_batch([t]),
                               texts, clients, f"{clients} client threads, max_batch 16, wait 2 ms"))  # fmt: skip
        print_row(rows[-1])
        if quantize == "int8":
            cached = CachedBackend(batched, size=len(texts) + 1)
            cached.predict_batch(list(texts))  # fill
            rows.append(sequential(label, "onnx int8, result cache hit", lambda t: cached.predict_batch([t]), texts,
                                   "memory LRU, every text seen before"))  # fmt: skip
            print_row(rows[-1])
        batched.close()
    return rows


def print_row(row: Row) -> None:
    print(f"  {row.model:<28} {row.path:<36} {row.sentences_per_s:9.1f}/s  p50 {row.p50_ms:8.1f} ms  "
          f"p95 {row.p95_ms:8.1f} ms  n={row.count} errors={row.errors}  {row.note}", flush=True)  # fmt: skip


# ---------------------------------------------------------------- end to end


def e2e(label: str, model_dir: Path, quantize: str, rates: Sequence[float], cache_dir: Path, seconds: float,
        worker_counts: Sequence[int] = (1, 2)) -> list[dict]:  # fmt: skip
    """Highest paced rate through the gateway with p95 <= budget and no errors, per worker count."""
    from bench.loadgen import PacedLoad, latency_ms
    from scripts.localcluster import LocalCluster, load_config, on_free_ports

    env = {
        "NER_BACKEND": "onnx",
        "NER_QUANTIZE": quantize,
        "NER_CACHE_DIR": str(cache_dir),
        "NER_RESULT_CACHE_SIZE": "0",
        "NER_THREADS": "8",
        "NER_MAX_BATCH": "16",
        "NER_BATCH_WAIT_MS": "2",
    }
    saved = {key: os.environ.get(key) for key in (*env, "NER_ORT_THREADS")}
    os.environ.update(env)
    run_dir = Path(tempfile.mkdtemp(prefix="ner-bench-"))
    run_dir.chmod(0o755)
    config = replace(
        on_free_ports(load_config(os.environ)),
        run_dir=run_dir,
        model_dir=model_dir,
        drain_seconds=1.0,
        gateway_rate="off",
    )
    cluster = LocalCluster(config, say=lambda message: None)
    results = []
    payload = {"text": "新华社北京三月五日电，国务院总理李强在人民大会堂作政府工作报告。"}
    try:
        for workers in worker_counts:
            # Each worker's ONNX threads: cores // workers, so threads x processes <= cores.
            os.environ["NER_ORT_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
            if cluster.workers():
                cluster.scale(0)
            cluster.up(workers)
            cluster.wait_gateway_serving()
            best = None
            for rate in rates:
                load = PacedLoad(f"{config.gateway_url}/v1/ner", rate=rate, threads=32, kinds=("retrying",),
                                 max_seconds=seconds, payload=payload).start()  # fmt: skip
                time.sleep(seconds)
                load.stop()
                elapsed = max(1e-9, load.stopped_at - load.started_at)
                ok = sum(1 for r in load.records if r.ok)
                errors = len(load.records) - ok
                failed = Counter(str(r.status or r.error) for r in load.records if not r.ok)
                p = latency_ms(load.records)
                step = {"model": label, "workers": workers, "target_rate": rate, "qps": ok / elapsed,
                        "p50_ms": p["p50"], "p95_ms": p["p95"], "errors": errors,
                        "generator_cpu_pct": 100 * load.cpu_seconds / elapsed, "failed": dict(failed)}  # fmt: skip
                print(f"  e2e {label:<24} workers={workers} target {rate:6.0f}/s -> {step['qps']:7.1f}/s  "
                      f"p50 {p['p50'] or 0:7.1f} ms  p95 {p['p95'] or 0:7.1f} ms  errors {errors} {dict(failed)}  "
                      f"generator CPU {step['generator_cpu_pct']:.0f}% of a core", flush=True)  # fmt: skip
                passed = errors == 0 and (p["p95"] or 1e9) <= P95_BUDGET_MS and step["qps"] >= 0.95 * rate
                if passed:
                    best = step
                else:
                    break
            results.append(best or {"model": label, "workers": workers, "qps": 0.0, "note": "no rate passed"})
    finally:
        cluster.down()
        shutil.rmtree(run_dir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return results


def default_model() -> Path:
    """A trained model shipped under models/ (lstm-crf preferred), else the generated tiny one."""
    shipped = sorted(p.parent for p in (REPO_ROOT / "models").glob("*/configuration.json"))
    lstm = [p for p in shipped if "lstm" in p.name]
    return (lstm or shipped or [TINY_MODEL])[0]


def ensure_base_model(path: Path) -> Path:
    """RaNER base geometry with random weights (speed only)."""
    if not (path / "pytorch_model.bin").is_file():
        from scripts.make_model import make_model

        make_model(path, model_type="structbert", seed=0, size="base")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default-model", type=Path, default=None)
    parser.add_argument("--base-model", type=Path, default=BASE_MODEL)
    parser.add_argument("--sentences", type=int, default=300, help="MSRA test sentences for the onnx paths")
    parser.add_argument("--pipeline-sentences", type=int, default=40, help="for the pipeline paths (slow)")
    parser.add_argument("--base-pipeline-sentences", type=int, default=10)
    parser.add_argument("--base-sentences", type=int, default=100, help="for the onnx paths at base size")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch / ORT threads")
    parser.add_argument("--e2e-seconds", type=float, default=8.0)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".local" / "cache")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "test-artifacts" / "bench_models.json")
    args = parser.parse_args(argv)

    sentences = msra_test_sentences()
    texts = sentences[: args.sentences]
    print(f"{len(texts)} MSRA test sentences, mean {statistics.mean(map(len, texts)):.1f} chars; "
          f"{args.threads} threads; {os.cpu_count()} cores", flush=True)  # fmt: skip
    models = [("default: " + (args.default_model or default_model()).name, args.default_model or default_model(),
               args.pipeline_sentences, args.sentences)]  # fmt: skip
    if not args.skip_base:
        models.append(("base size (random weights)", ensure_base_model(args.base_model), args.base_pipeline_sentences,
                       args.base_sentences))  # fmt: skip
    rows: list[Row] = []
    for label, path, slow_count, count in models:
        print(f"\n== {label}: {path}", flush=True)
        rows += measure_model(label, path, texts[:count], texts[:slow_count], args.cache_dir, args.threads,
                              args.clients)  # fmt: skip
    print("\nratios to the pipeline as-is (sentences/s):")
    for label, *_ in models:
        model_rows = [r for r in rows if r.model == label]
        base = next(r for r in model_rows if r.path.startswith("pipeline as-is")).sentences_per_s
        for row in model_rows:
            print(f"  {label:<28} {row.path:<36} {row.sentences_per_s / base:8.1f}x")
    e2e_rows: list[dict] = []
    if not args.skip_e2e:
        print("\n== end to end through the gateway (result cache off)", flush=True)
        default_path = models[0][1]
        e2e_rows += e2e(models[0][0], default_path, "int8", (100, 200, 300, 400, 500, 600, 800), args.cache_dir,
                        args.e2e_seconds)  # fmt: skip
        if not args.skip_base:
            e2e_rows += e2e(models[1][0] + " int8", models[1][1], "int8", (20, 40, 60, 70, 80, 100, 120),
                            args.cache_dir, args.e2e_seconds)  # fmt: skip
        for row in e2e_rows:
            print(f"  best: {row}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"in_process": [vars(r) for r in rows], "e2e": e2e_rows}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
