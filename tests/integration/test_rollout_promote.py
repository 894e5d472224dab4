"""Promote and roll back under paced load cost no request; a canary that answers errors rolls itself back.

Two clients run through the gateway during each step: one that retries a failed connection
(a fresh connection per request), and a naive one that keeps one keep-alive connection and never
retries. Both must see 0 failed requests while shares change and workers drain and stop."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.localcluster import LocalCluster
from scripts.localmode.versions import LocalRollout
from scripts.localmode.workers import WorkerModel
from tests.integration.conftest import cluster_config, world_readable_dir
from tests.integration.test_rollout import ROLLOUT_MODEL

TEXT = {"text": "张三在北京的清华大学工作。"}
RARE = {"text": "龘张三在北京工作。"}  # a character the broken canary's embedding has no row for
PACE_SECONDS = 0.02  # each client sends at most 50 requests/s


@dataclass
class PacedClient:
    """Sequential POSTs through the gateway at a fixed pace until stopped (bounded in time)."""

    url: str
    keep_alive: bool
    retries: int = 0
    max_seconds: float = 120.0
    rare_every: int = 0  # every n-th request carries RARE (0: never)
    statuses: list = field(default_factory=list)
    versions: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "PacedClient":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session() if self.keep_alive else None
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            status = self._one(session)
            self.statuses.append(status)
            self._stop.wait(PACE_SECONDS)

    def _one(self, session: requests.Session | None) -> int | str:
        body = RARE if self.rare_every and len(self.statuses) % self.rare_every == 0 else TEXT
        for attempt in range(self.retries + 1):
            try:
                if session is not None:
                    response = session.post(f"{self.url}/v1/ner", json=body, timeout=10)
                else:
                    response = requests.post(
                        f"{self.url}/v1/ner", json=body, timeout=10, headers={"Connection": "close"}
                    )
                self.versions.append(response.headers.get("X-Model-Version"))
                return response.status_code
            except requests.RequestException as error:
                if attempt == self.retries:
                    return type(error).__name__
        return "unreachable"

    def stop(self) -> "PacedClient":
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=20)
        return self

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses if s != 200)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    run_dir = world_readable_dir("ner-promote-")
    local = LocalCluster(replace(cluster_config(run_dir), monitor=False), say=lambda message: None)
    try:
        local.up(1)
        yield local
    finally:
        local.down()
        shutil.rmtree(run_dir, ignore_errors=True)


def registered_versions(local: LocalRollout) -> set[str]:
    return {i.model_label for i in local.registrar_rollout().instances()}


def nginx_reloads(cluster: LocalCluster) -> int:
    """Reloads the renderer has made so far (one JSON log line each)."""
    log = cluster.config.run_dir / "logs" / "renderer.log"
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '"reloaded": true' in line)


def under_load(cluster: LocalCluster, step, rare_every: int = 0) -> tuple[PacedClient, PacedClient, int]:
    """Run step() while both clients send; returns them (stopped) and the nginx reloads step cost."""
    url = cluster.config.gateway_url
    reloads_before = nginx_reloads(cluster)
    retrying = PacedClient(url, keep_alive=False, retries=2, rare_every=rare_every).start()
    naive = PacedClient(url, keep_alive=True, rare_every=rare_every).start()
    time.sleep(1.0)  # both clients are under way before the change
    try:
        step()
        time.sleep(1.0)
    finally:
        retrying.stop()
        naive.stop()
    return retrying, naive, nginx_reloads(cluster) - reloads_before


def report(what: str, retrying: PacedClient, naive: PacedClient, reloads: int, record_property) -> None:
    line = (
        f"{what}: retrying client {len(retrying.statuses)} requests, {retrying.failed} failed; "
        f"keep-alive client {len(naive.statuses)} requests, {naive.failed} failed; {reloads} nginx reloads"
    )
    print(line)
    record_property(what, line)


def test_promote_under_load_fails_no_request_and_drains_the_old_version(cluster, record_property):
    local = LocalRollout(cluster, say=print)
    old = local.registrar_rollout().live_versions()[0]
    new = WorkerModel(ROLLOUT_MODEL, version="promoted-1")
    local.rollout(new, canary=10.0, workers=1, watch=0)
    retrying, naive, reloads = under_load(cluster, lambda: local.promote(new.ref()))
    report("promote", retrying, naive, reloads, record_property)
    assert retrying.failed == 0 and naive.failed == 0
    assert registered_versions(local) == {new.ref()}  # the old worker drained and deregistered
    assert old not in naive.versions[-20:]


def test_rollback_under_load_fails_no_request_and_drains_the_canary(cluster, record_property):
    local = LocalRollout(cluster, say=print)
    old = local.registrar_rollout().live_versions()[0]
    canary = WorkerModel(ROLLOUT_MODEL, version="rolled-back-1")
    local.rollout(canary, canary=10.0, workers=1, watch=0)
    retrying, naive, reloads = under_load(cluster, lambda: local.rollback(canary.ref()))
    report("rollback", retrying, naive, reloads, record_property)
    assert retrying.failed == 0 and naive.failed == 0
    assert registered_versions(local) == {old}


def broken_model(root: Path) -> Path:
    """A copy of the rollout model (an lstm-crf, whatever the default model is) whose vocabulary names
    a character its embedding has no row for: it loads and passes its health probe, and fails on
    every text holding that character."""
    target = root / f"{ROLLOUT_MODEL.name}-broken"
    shutil.copytree(ROLLOUT_MODEL, target)
    assert json.loads((target / "configuration.json").read_text())["model"]["type"] == "lstm-crf"
    vocab = (target / "vocab.txt").read_text(encoding="utf-8")
    (target / "vocab.txt").write_text(vocab.rstrip("\n") + "\n龘\n", encoding="utf-8")
    return target


def test_a_canary_answering_errors_is_rolled_back_by_the_watch(cluster, tmp_path, record_property):
    local = LocalRollout(cluster, say=print)
    old = local.registrar_rollout().live_versions()[0]
    canary = WorkerModel(broken_model(tmp_path), version="broken-1")
    result: dict = {}

    def roll_out() -> None:
        started = time.monotonic()
        result["watch"] = local.rollout(canary, canary=10.0, workers=1, watch=60, min_requests=20)
        result["seconds"] = time.monotonic() - started

    retrying, naive, reloads = under_load(cluster, roll_out, rare_every=5)
    watch = result["watch"]
    line = (
        f"automatic rollback after {watch.seconds:.1f}s of watch: {watch.reason}; clients saw "
        f"{retrying.failed + naive.failed} failed of {len(retrying.statuses) + len(naive.statuses)}; "
        f"{reloads} nginx reloads"
    )
    print(line)
    record_property("auto_rollback", line)
    assert watch.rolled_back
    assert registered_versions(local) == {old}
    assert result["seconds"] < 30
