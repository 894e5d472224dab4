"""A cluster spanning three hosts (network namespaces): what survives a cut link and a dead leader.

Hosts A, B, C each run a Consul server; workers on B and C register with their own host's
agent under their host address; the gateway (nginx + the upstream_renderer package) on A reads A's agent.
Every request comes from a bounded, retrying client inside A.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from tests.multihost.cluster import MultiHostCluster, failed, retried, start_cluster
from tests.support.waiting import wait_for, wait_outcomes

REMOVAL_LIMIT_S = 15.0
# Answers the request loop collects before a failure, while it lasts and after it.
SETTLE_OUTCOMES = 20


@pytest.fixture(scope="module")
def cluster(record_figure) -> Iterator[MultiHostCluster]:
    workdir = Path(tempfile.mkdtemp(prefix="ner-multihost-"))
    made = []
    for running in start_cluster(workdir, record_figure):
        made.append(running)
        yield running
    assert made and made[0].net.remaining() == [], "namespaces left behind"


def record_requests(record_figure, prefix: str, counted: list[dict], outcomes: list[dict]) -> None:
    """How many requests a scenario sent, and how many of the loop's requests failed or were retried."""
    record_figure(f"{prefix}_requests", len(counted))
    record_figure(f"{prefix}_failed_requests", len(failed(outcomes)))
    record_figure(f"{prefix}_retried_requests", len(retried(outcomes)))


def served_hosts(cluster: MultiHostCluster, outcomes: list[dict]) -> Counter:
    """Answers per host, by the serving worker's address in Consul."""
    by_id = cluster.passing_addresses()
    names = {h.address: n for n, h in cluster.net.hosts.items()}
    return Counter(names.get(by_id.get(o["worker"], ""), "?") for o in outcomes if o["status"] == 200)


def test_gateway_on_a_reaches_workers_on_b_and_c(cluster: MultiHostCluster) -> None:
    addresses = set(cluster.passing_addresses().values())
    assert addresses == {cluster.host("b").address, cluster.host("c").address}

    loop = cluster.request_loop("spread", max_seconds=30)
    wait_outcomes(loop.outcomes, 40)
    outcomes = loop.stop()

    assert not failed(outcomes)
    hosts = served_hosts(cluster, outcomes)
    assert hosts["b"] > 0 and hosts["c"] > 0, hosts


def test_cut_link_drops_host_b_within_15s_and_restoring_brings_it_back(
    cluster: MultiHostCluster, record_figure
) -> None:
    on_b = {i for i, a in cluster.passing_addresses().items() if a == cluster.host("b").address}
    leader_before = cluster.leader("a")
    loop = cluster.request_loop("cut-link", max_seconds=150)
    cut = False
    try:
        wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
        cut_at = time.monotonic()
        cluster.net.cut("b")
        cut = True
        removed = wait_for(
            lambda: "b" not in cluster.upstream_hosts(),
            30,
            "host B out of the gateway's upstream",
            interval=0.1,
            on_timeout=cluster.logs,
        )
        wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)  # served by C alone
        restored_at = time.monotonic()
        cluster.net.restore("b")
        cut = False
        back = wait_for(
            lambda: "b" in cluster.upstream_hosts(),
            90,
            "host B back in the gateway's upstream",
            interval=0.1,
            on_timeout=cluster.logs,
        )
        wait_for(
            lambda: any(o["sent"] > restored_at + back and o["worker"] in on_b for o in loop.outcomes()),
            30,
            "a request served on B again",
        )
    finally:
        if cut:
            cluster.net.restore("b")  # the next test needs all three hosts
        outcomes = loop.stop()

    during_cut = [o for o in outcomes if cut_at <= o["sent"] <= cut_at + removed]
    print(f"Raft leader when B's link was cut: host {leader_before}")
    record_figure("multihost_link_cut_removed_s", removed)
    record_figure("multihost_link_restored_back_s", back)
    record_requests(record_figure, "multihost_link", counted=outcomes, outcomes=outcomes)
    record_figure("multihost_link_max_latency_during_cut_s", max((o["took"] for o in during_cut), default=0.0))
    assert removed <= REMOVAL_LIMIT_S
    assert failed(outcomes) == [], failed(outcomes)[:5]


def test_killing_the_consul_leader_elects_another_and_the_gateway_keeps_serving(
    cluster: MultiHostCluster, record_figure
) -> None:
    wait_for(lambda: cluster.voters("a") == 3, 60, "3 Raft voters", interval=0.5, on_timeout=cluster.logs)
    old = cluster.leader("a")
    assert old is not None
    survivors = [name for name in cluster.net.hosts if name != old]
    loop = cluster.request_loop("leader-kill", max_seconds=120)
    try:
        wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)
        killed_at = time.monotonic()
        cluster.kill_consul(old)
        elected = wait_for(
            lambda: cluster.leader(survivors[0]) in survivors
            and cluster.leader(survivors[1]) == cluster.leader(survivors[0]),
            30,
            "a new leader",
            interval=0.1,
            on_timeout=cluster.logs,
        )
        wait_outcomes(loop.outcomes, SETTLE_OUTCOMES)  # served under the new leader
        cluster.start_consul(old)
        rejoined = wait_for(
            lambda: all(cluster.peers(n) == 3 for n in cluster.net.hosts)
            and len(cluster.passing_addresses()) == 2
            and cluster.upstream_hosts() == {"b", "c"},
            90,
            "the old leader back and both workers routed",
            interval=0.2,
            on_timeout=cluster.logs,
        )
    finally:
        outcomes = loop.stop()

    during = [o for o in outcomes if o["sent"] >= killed_at]
    print(f"killed leader: host {old}; new leader: host {cluster.leader(survivors[0])}")
    record_figure("multihost_leader_killed_new_leader_s", elected)
    record_figure("multihost_leader_killed_rejoined_s", rejoined)
    record_requests(record_figure, "multihost_leader", counted=during, outcomes=outcomes)
    assert failed(outcomes) == [], failed(outcomes)[:5]
