"""consul_file_sd.py: Consul's health answer as Prometheus file_sd targets, labelled as consul_sd_configs does."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "monitoring" / "consul_file_sd.py"
spec = importlib.util.spec_from_file_location("consul_file_sd", SCRIPT)
sd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sd)


def entry(service_id: str, *statuses: str, meta: dict | None = None, address: str = "10.0.0.5") -> dict:
    checks = [{"CheckID": "serfHealth", "Status": "passing"}]
    checks += [{"CheckID": f"service:{service_id}", "Status": status} for status in statuses]
    return {
        "Node": {"Node": "host-a", "Address": "10.0.0.1", "Datacenter": "dc1", "Meta": {}},
        "Service": {
            "ID": service_id,
            "Service": "ner-worker",
            "Address": address,
            "Port": 8000,
            "Tags": ["model=m"],
            "Meta": meta or {},
        },
        "Checks": checks,
    }


@pytest.mark.parametrize(
    "statuses, expected",
    [
        (("passing",), "passing"),
        (("warning",), "warning"),
        (("passing", "critical"), "critical"),
        (("warning", "critical"), "critical"),
    ],
)
def test_an_instances_health_is_its_worst_check(statuses, expected):
    assert sd.aggregated_status(entry("a", *statuses)["Checks"]) == expected


def test_an_instance_in_maintenance_is_in_maintenance_whatever_its_checks_say():
    checks = entry("a", "passing")["Checks"] + [{"CheckID": "_service_maintenance:a", "Status": "critical"}]
    assert sd.aggregated_status(checks) == "maintenance"


def test_a_target_carries_the_labels_consul_sd_configs_would_give_it():
    (group,) = sd.target_groups([entry("ner-worker-a", "passing", meta={"model": "raner", "model_version": "e12"})])
    assert group["targets"] == ["10.0.0.5:8000"]
    labels = group["labels"]
    assert labels["__meta_consul_service_id"] == "ner-worker-a"
    assert labels["__meta_consul_node"] == "host-a"
    assert labels["__meta_consul_health"] == "passing"
    assert labels["__meta_consul_service_metadata_model"] == "raner"
    assert labels["__meta_consul_service_metadata_model_version"] == "e12"
    assert labels["__meta_consul_tags"] == ",model=m,"


def test_an_instance_without_its_own_address_is_scraped_at_its_nodes():
    (group,) = sd.target_groups([entry("a", "passing", address="")])
    assert group["targets"] == ["10.0.0.1:8000"]


def test_the_same_instances_in_another_order_give_the_same_file(tmp_path):
    out = tmp_path / "targets.json"
    first = json.dumps(sd.target_groups([entry("b", "passing"), entry("a", "passing")]))
    second = json.dumps(sd.target_groups([entry("a", "passing"), entry("b", "passing")]))
    assert sd.write_atomic(out, first) is True
    assert sd.write_atomic(out, second) is False


@pytest.mark.parametrize(
    "previous, header, expected",
    [
        (0, "17", 17),
        (17, "20", 20),
        (20, "5", 0),
        (3, None, 0),
        (3, "0", 0),
        (3, "x", 0),
    ],
    ids=["first", "newer", "went backwards", "missing", "zero", "garbage"],
)
def test_the_next_blocking_index_follows_consuls_rules(previous, header, expected):
    assert sd.next_index(previous, header) == expected
