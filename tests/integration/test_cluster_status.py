"""`make status` shows every worker's live load, read from its own /metrics."""

from __future__ import annotations

import re

import requests

from scripts.localcluster import LocalCluster


def test_status_lists_both_workers_with_in_flight_and_served_counts(two_workers: LocalCluster, capsys):
    for _ in range(6):  # least_conn spreads these over both workers
        requests.post(f"{two_workers.config.gateway_url}/v1/ner", json={"text": "张三在北京"}, timeout=10)
    capsys.readouterr()
    two_workers.print_status()
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("ID "))
    assert header.split() == ["ID", "ADDRESS", "STATUS", "MODEL", "IN-FLIGHT", "SERVED", "NODE"]
    ids = {service["ID"] for service in two_workers.passing()}
    assert len(ids) == 2
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in ids}
    assert set(rows) == ids, out
    for row in rows.values():
        in_flight, served = row[4], row[5]
        assert re.fullmatch(r"\d+", in_flight) and re.fullmatch(r"\d+", served), out
    assert sum(int(row[5]) for row in rows.values()) >= 6, out
