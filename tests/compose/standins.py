"""Local stand-ins for the base images the Dockerfiles and compose file name, made with debootstrap.

No registry is reachable here, so `python:3.11-slim`, `nginx` and `hashicorp/consul` are
replaced by Debian 12 root filesystems with the same programs at the same paths, imported
into podman under `localhost/ner-standin/...` tags and passed to the builds as build
arguments. An image that already exists under its tag is reused.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.compose.podman import image_exists, podman
from tests.support.processes import LOCAL_BIN

MIRROR = "http://deb.debian.org/debian"
CONSUL_SHA256 = "a449efb10a03df3cb9310f3a54d933ccda7c4faba4f421f183fc90a82056798e"


@dataclass(frozen=True)
class StandIn:
    """One stand-in base image: its tag, the Debian packages inside, and the image settings."""

    tag: str
    packages: tuple[str, ...]
    changes: tuple[str, ...]
    finish: Callable[[Path], None] | None = None


def _install_consul(rootfs: Path) -> None:
    """Put the sha256-verified Consul 1.8.7 binary where the official image has it."""
    source = LOCAL_BIN / "consul"
    digest = subprocess.run(["sha256sum", str(source)], capture_output=True, text=True, check=True)
    if digest.stdout.split()[0] != CONSUL_SHA256:
        raise RuntimeError(f"{source} is not the verified Consul 1.8.7 binary: run scripts/install_consul.sh")
    shutil.copy2(source, rootfs / "bin" / "consul")
    for directory in ("consul/data", "consul/config"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)


PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STANDINS = {
    "python": StandIn(
        "localhost/ner-standin/python:3.11-slim",
        ("python3", "python3-venv", "ca-certificates"),
        (PATH_ENV, "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
    ),
    "nginx": StandIn(
        "localhost/ner-standin/nginx:bookworm",
        ("nginx", "python3", "python3-requests", "ca-certificates"),
        (PATH_ENV, "EXPOSE 80", 'CMD ["nginx", "-g", "daemon off;"]'),
    ),
    "consul": StandIn(
        "localhost/ner-standin/consul:1.8.7",
        ("ca-certificates",),
        (PATH_ENV, "EXPOSE 8500", 'ENTRYPOINT ["consul"]', 'CMD ["version"]'),
        _install_consul,
    ),
}


def build_standin(conf: Path, standin: StandIn, log: Path) -> float:
    """debootstrap a minbase bookworm with the packages, then `podman import`; seconds taken."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ner-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(standin.packages)}",
            "bookworm",
            str(rootfs),
            MIRROR,
        ]
        with open(log, "ab") as out:
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900)
        if standin.finish:
            standin.finish(rootfs)
        subprocess.run(
            ["rm", "-rf", str(rootfs / "var/cache/apt/archives"), str(rootfs / "var/lib/apt/lists")], check=True
        )
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], capture_output=True, check=True, timeout=600
        ).stdout
        change_args = [arg for change in standin.changes for arg in ("--change", change)]
        podman(conf, "import", *change_args, "-", standin.tag, input_bytes=tar, timeout=600)
    return time.monotonic() - started


def ensure_standins(conf: Path, log: Path, say: Callable[[str], None] = print) -> dict[str, float]:
    """Every stand-in present under its tag; returns build seconds for the ones built now."""
    built = {}
    for name, standin in STANDINS.items():
        if image_exists(conf, standin.tag):
            say(f"stand-in {standin.tag}: cached")
            continue
        built[name] = build_standin(conf, standin, log)
        say(f"stand-in {standin.tag}: built in {built[name]:.0f}s")
    return built


if __name__ == "__main__":
    import sys

    from tests.compose.podman import write_containers_conf

    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ner-standins")
    print(ensure_standins(write_containers_conf(work), work / "debootstrap.log"))
