"""The cluster's processes started inside host namespaces: Consul servers, workers, the gateway."""

from __future__ import annotations

import json
import os
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.localmode.workers import gunicorn_argv
from tests.multihost.netns import Host
from tests.support.processes import LOCAL_BIN, REPO_ROOT, ManagedProcess

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
MODEL_DIR = REPO_ROOT / ".local" / "models" / "raner-tiny-random"
CONSUL_PORT = 8500
WORKER_PORT = 8000
GATEWAY_PORT = 8080


def ns_http(host: Host, url: str, timeout: float = 3.0, data: str | None = None) -> tuple[int, str]:
    """(status, body) of one HTTP request made from inside a host namespace (curl; 0 = no answer)."""
    argv = ["curl", "-s", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}", url]
    if data is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", data]
    result = subprocess.run(host.argv(argv), capture_output=True, text=True, timeout=timeout + 5)
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body


def ns_json(host: Host, url: str) -> Any:
    """JSON body of a GET from inside a namespace; raises when there is no 200."""
    status, body = ns_http(host, url)
    if status != 200:
        raise RuntimeError(f"GET {url} from {host.name}: {status}")
    return json.loads(body)


def start_consul_server(host: Host, peers: list[Host], workdir: Path, bootstrap: bool = False) -> ManagedProcess:
    """One of three Consul servers, bound to the host's address; joins the others until it can.

    The one started with bootstrap elects itself and is the first Raft leader; the others
    join it (and are promoted to voters by autopilot). A restarted server finds its Raft state
    in its data directory and just rejoins."""
    config = {
        "node_name": f"host-{host.name}",
        "datacenter": "dc1",
        "server": True,
        **({"bootstrap": True} if bootstrap else {}),
        "bind_addr": host.address,
        "advertise_addr": host.address,
        "client_addr": f"127.0.0.1 {host.address}",
        "retry_join": [peer.address for peer in peers],
        "retry_interval": "1s",
        "data_dir": str(workdir / f"consul-{host.name}-data"),
        "ports": {"dns": -1, "grpc": -1},
        # Elections and failure detection at production speed (the default multiplier, 5,
        # is meant for small development machines).
        "performance": {"raft_multiplier": 1},
        "leave_on_terminate": False,
        "disable_update_check": True,
        "log_level": "INFO",
        "ui": True,
    }
    path = workdir / f"consul-{host.name}.json"
    path.write_text(json.dumps(config))
    return ManagedProcess(
        name=f"consul-{host.name}",
        argv=host.argv([str(LOCAL_BIN / "consul"), "agent", f"-config-file={path}"]),
        log_path=workdir / f"consul-{host.name}.log",
    ).start()


def start_worker(host: Host, workdir: Path, port: int = WORKER_PORT) -> ManagedProcess:
    """A gunicorn worker bound to the host's address, registering with that host's own agent."""
    name = f"worker-{host.name}-{port}"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(workdir),
        "PYTHONPATH": str(REPO_ROOT),
        "NER_BIND": f"{host.address}:{port}",
        "NER_MODEL_DIR": str(MODEL_DIR),
        # The local agent by its host address: the registrar then advertises that address.
        "CONSUL_HTTP_ADDR": f"{host.address}:{CONSUL_PORT}",
        "NER_DRAIN_SECONDS": "2",
        "NER_TORCH_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics" / name),
    }
    argv = host.argv(gunicorn_argv(PYTHON, name))
    return ManagedProcess(name=name, argv=argv, log_path=workdir / f"{name}.log", env=env).start()


@dataclass
class Gateway:
    """nginx + the project renderer on one host, against that host's Consul agent."""

    host: Host
    prefix: Path
    nginx: ManagedProcess
    renderer: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{GATEWAY_PORT}"

    @property
    def upstream_file(self) -> Path:
        return self.prefix / "upstream.conf"

    def upstream_servers(self) -> list[str]:
        """host:port of every live server line in the rendered upstream."""
        try:
            text = self.upstream_file.read_text()
        except FileNotFoundError:
            return []
        return [
            line.split()[1] for line in text.splitlines() if line.strip().startswith("server ") and " down;" not in line
        ]

    def stop(self) -> None:
        self.renderer.stop(timeout=5)
        self.nginx.stop(timeout=5)


def start_gateway(host: Host, prefix: Path, nginx_bin: str = "/usr/sbin/nginx") -> Gateway:
    """Fill nginx.conf for the host's address, render once, start nginx, then keep rendering."""
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)
    (prefix / "logs").mkdir(exist_ok=True)
    (prefix / "limits.d").mkdir(exist_ok=True)
    template = string.Template((REPO_ROOT / "nginx-template" / "nginx.conf.tmpl").read_text())
    (prefix / "nginx.conf").write_text(
        template.substitute(
            PREFIX=str(prefix), LISTEN=f"{host.address}:{GATEWAY_PORT}", UPSTREAM_CONF=str(prefix / "upstream.conf")
        )
    )
    renderer_argv = [
        str(PYTHON),
        "-m",
        "upstream_renderer",
        "--consul",
        f"{host.address}:{CONSUL_PORT}",
        "--out",
        str(prefix / "upstream.conf"),
        "--nginx-bin",
        nginx_bin,
        "--nginx-prefix",
        str(prefix),
        "--nginx-conf",
        str(prefix / "nginx.conf"),
    ]
    renderer_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "nginx-template")}  # where the package is
    subprocess.run(
        host.argv([*renderer_argv, "--once", "--no-reload"]),
        check=True,
        capture_output=True,
        timeout=30,
        env=renderer_env,
    )
    nginx = ManagedProcess(
        name="nginx",
        argv=host.argv(
            [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        ),
        log_path=prefix / "nginx.out",
    ).start()
    renderer = ManagedProcess(
        name="renderer", argv=host.argv(renderer_argv), log_path=prefix / "renderer.log", env=renderer_env
    ).start()
    return Gateway(host=host, prefix=prefix, nginx=nginx, renderer=renderer)
