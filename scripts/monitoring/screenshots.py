"""The screenshots in docs/OBSERVABILITY.md: Prometheus' targets and a recorded series during a scale event.

Starts a local cluster of its own (free ports, 1 s scrape and evaluation), scales it 2 -> 3 -> 1
-> 2 with requests flowing through the gateway, and has headless Chromium (Debian's chromium and
chromium-driver, through scripts/monitoring/chromium.py like tests/integration/test_web_page.py) photograph Prometheus' pages:

    .venv/bin/python -m scripts.monitoring.screenshots [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import replace
from pathlib import Path

import requests

from scripts.localcluster import LocalCluster, load_config, on_free_ports
from scripts.localmode.config import REPO_ROOT
from scripts.monitoring.chromium import headless_chromium

MODEL = REPO_ROOT / "models" / "lac-msra-lstm"


def traffic(gateway: str, stop: threading.Event) -> None:
    """A few requests a second through the gateway, so the gateway's series have something to show."""
    with requests.Session() as session:
        while not stop.is_set():
            try:
                session.post(f"{gateway}/v1/ner", json={"text": "张三在北京工作。"}, timeout=5)
            except requests.RequestException:
                pass
            stop.wait(0.1)


def graph_url(prometheus: str, expr: str, minutes: int) -> str:
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": f"{minutes}m"})
    return f"{prometheus}/classic/graph?{query}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img")
    parser.add_argument("--step-seconds", type=float, default=40, help="how long each worker count lasts")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="ner-screenshots-"))
    run_dir.chmod(0o755)
    env = {
        **os.environ,
        "NER_PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "NER_PROMETHEUS_EVALUATION_INTERVAL": "1s",
        "NER_MONITOR": "1",
    }
    config = replace(on_free_ports(load_config(env)), run_dir=run_dir, model_dir=MODEL, drain_seconds=2.0)
    cluster = LocalCluster(config)
    stop = threading.Event()
    try:
        cluster.up(2)
        pump = threading.Thread(target=traffic, args=(config.gateway_url, stop), daemon=True)
        pump.start()
        started = time.monotonic()
        with headless_chromium(1400, 1500) as driver:
            for count in (2, 3, 1, 2):
                cluster.scale(count)
                time.sleep(args.step_seconds)
                if count == 3:  # the targets while the third worker runs
                    driver.get(f"{config.prometheus_url}/classic/targets")  # Debian builds the classic UI only
                    time.sleep(2)
                    driver.save_screenshot(str(args.out / "prometheus-targets.png"))
            minutes = int((time.monotonic() - started) / 60) + 2
            driver.set_window_size(1400, 1000)
            driver.get(graph_url(config.prometheus_url, "ner:worker_instances:healthy", minutes))
            time.sleep(4)
            driver.save_screenshot(str(args.out / "prometheus-scale-event.png"))
        print(f"screenshots in {args.out}")
    finally:
        stop.set()
        cluster.down()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
