"""What `python -m registrar list` shows, from health entries as Consul 1.8 returns them."""

from __future__ import annotations

from types import SimpleNamespace

from registrar.inventory import instance_status, list_instances


def entry(service_id: str, checks: list[dict], meta: dict | None = None, address: str = "10.0.0.5") -> dict:
    return {
        "Node": {"Node": "node-a", "Address": "10.0.0.1"},
        "Service": {"ID": service_id, "Service": "ner-worker", "Address": address, "Port": 8001, "Meta": meta or {}},
        "Checks": checks,
    }


SERF = {"CheckID": "serfHealth", "Status": "passing"}


def test_status_is_the_worst_of_node_and_service_checks() -> None:
    assert instance_status([SERF, {"CheckID": "service:x", "Status": "passing"}]) == "passing"
    assert instance_status([SERF, {"CheckID": "service:x", "Status": "warning"}]) == "warning"
    assert (
        instance_status(
            [{"CheckID": "serfHealth", "Status": "critical"}, {"CheckID": "service:x", "Status": "passing"}]
        )
        == "critical"
    )


def test_status_names_maintenance_rather_than_plain_critical() -> None:
    checks = [
        SERF,
        {"CheckID": "service:x", "Status": "passing"},
        {"CheckID": "_service_maintenance:x", "Status": "critical"},
    ]
    assert instance_status(checks) == "maintenance"


def test_instances_carry_endpoint_model_and_node_sorted_by_id() -> None:
    client = SimpleNamespace(
        health=SimpleNamespace(
            service=lambda name: (
                7,
                [
                    entry("b", [SERF], {"model": "raner", "model_version": "abc"}),
                    entry("a", [SERF], address=""),
                ],
            )
        )
    )
    a, b = list_instances(client, "ner-worker")
    assert (a.id, a.endpoint, a.model_label, a.node) == ("a", "10.0.0.1:8001", "-", "node-a")
    assert (b.id, b.endpoint, b.model_label, b.status) == ("b", "10.0.0.5:8001", "raner@abc", "passing")
