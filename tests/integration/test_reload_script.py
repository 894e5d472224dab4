"""reload-nginx.sh, consul-template's reload command: test first, reload, or keep the last good upstream."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import world_readable_dir
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, wait_until
from upstream_renderer.nginx import fill_nginx_conf
from upstream_renderer.template import render

SCRIPT = REPO_ROOT / "nginx-template" / "reload-nginx.sh"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The upstream file of a cluster with no worker yet (nginx.conf reads its maps, too).
GOOD = render((REPO_ROOT / "nginx-template" / "upstream.ctmpl").read_text(), [], keys={})


@pytest.fixture
def running_nginx():
    prefix = world_readable_dir("ner-reload-")
    port = free_port()
    conf = prefix / "nginx.conf"
    upstream = prefix / "upstream.conf"
    conf.write_text(
        fill_nginx_conf(
            (REPO_ROOT / "nginx-template" / "nginx.conf.tmpl").read_text(),
            prefix=str(prefix),
            upstream_conf=str(upstream),
            listen=f"127.0.0.1:{port}",
        )
    )
    upstream.write_text(GOOD)
    nginx = ManagedProcess(
        "nginx", [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")], prefix / "nginx.out"
    ).start()
    wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/gateway/health", timeout=1).ok,
        10,
        describe="nginx up",
        on_timeout=nginx.log_tail,
    )
    yield prefix, conf, upstream
    nginx.stop()
    shutil.rmtree(prefix, ignore_errors=True)


def reload(prefix: Path, conf: Path, upstream: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), str(prefix), str(conf), str(upstream)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/sbin:/usr/bin:/bin", "NGINX_BIN": NGINX},
    )


def test_a_valid_upstream_is_reloaded_and_remembered_as_good(running_nginx):
    prefix, conf, upstream = running_nginx
    result = reload(prefix, conf, upstream)
    assert result.returncode == 0, result.stderr
    assert (prefix / "upstream.conf.good").read_text() == GOOD


def test_a_broken_upstream_is_refused_and_the_last_good_one_put_back(running_nginx):
    prefix, conf, upstream = running_nginx
    assert reload(prefix, conf, upstream).returncode == 0
    upstream.write_text("upstream ner_workers { this is not nginx; }\n")
    result = reload(prefix, conf, upstream)
    assert result.returncode == 1
    assert "keeping the last good one" in result.stderr
    assert upstream.read_text() == GOOD
