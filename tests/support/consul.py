"""A real Consul dev agent on free loopback ports, for integration tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.processes import LOCAL_BIN, ManagedProcess, free_port
from tests.support.waiting import wait_for


@dataclass
class ConsulAgent:
    """A running `consul agent -dev` and the ports it listens on."""

    process: ManagedProcess
    http_port: int
    data_dir: Path
    config_path: Path

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=5)

    def passing_ids(self, service: str = "ner-worker") -> set[str]:
        """IDs of the instances of a service whose checks all pass."""
        entries = self.get(f"/v1/health/service/{service}", passing="1").json()
        return {e["Service"]["ID"] for e in entries}

    def agent_services(self) -> dict:
        return self.get("/v1/agent/services").json()

    def clear(self) -> None:
        """Deregister every service and delete every key, so the next test finds the agent empty."""
        for service_id in self.agent_services():
            requests.put(f"{self.url}/v1/agent/service/deregister/{service_id}", timeout=5).raise_for_status()
        requests.delete(f"{self.url}/v1/kv/", params={"recurse": "true"}, timeout=5).raise_for_status()

    def restart(self) -> None:
        """Stop and start again: a dev agent comes back with no state."""
        self.process.stop()
        self.process.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def leader_elected() -> bool:
            response = self.get("/v1/status/leader")
            return response.status_code == 200 and response.json() not in ("", None)

        wait_for(leader_elected, timeout, "a Consul leader", on_timeout=self.process.log_tail)


def start_consul(workdir: Path, name: str = "consul") -> ConsulAgent:
    """Start a dev agent (server, UI) on free ports; every other port is free or disabled."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    config = {
        "node_name": f"test-{name}",
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "ports": {
            "http": http_port,
            "dns": -1,
            "grpc": -1,
            "serf_lan": free_port(),
            "serf_wan": free_port(),
            "server": free_port(),
        },
        "log_level": "INFO",
    }
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    data_dir = workdir / f"{name}-data"
    process = ManagedProcess(
        name=name,
        argv=[str(LOCAL_BIN / "consul"), "agent", "-dev", "-ui", f"-config-file={config_path}"],
        log_path=workdir / f"{name}.log",
    )
    agent = ConsulAgent(process=process, http_port=http_port, data_dir=data_dir, config_path=config_path)
    process.start()
    agent.wait_ready()
    return agent
