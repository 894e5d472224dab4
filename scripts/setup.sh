#!/usr/bin/env bash
# Install what the cluster (and with --for-tests, its test suite) needs, idempotently: nginx,
# the Consul 1.8.7 binary (project-local, sha256-verified), a project-local virtualenv
# with the pinned Python packages; for the tests also a generated model and the MSRA corpus.
# The default model ships in models/.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.requirements.sha256"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages: the gateway always; for the test suite also the browser (web page test,
# with a Chinese font) and redis-server (shared result cache). `setup.sh --for-tests`.
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
# Monitoring (docs/OBSERVABILITY.md): Prometheus 2.42 with promtool, mtail for the gateway's log.
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v mtail >/dev/null 2>&1 || need_apt+=(mtail)
if [ "${1:-}" = "--for-tests" ]; then
    [ -x /usr/bin/chromium ] || need_apt+=(chromium)
    [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
    fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-wqy-zenhei)
    command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
    # compose on real containers (podman + runc) and the multi-host test; iptables is not
    # pulled in without recommends, and podman's network stack needs it.
    for tool in podman runc debootstrap docker-compose iptables curl; do
        command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
    done
    [ -x /usr/lib/podman/netavark ] || need_apt+=(netavark aardvark-dns)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No package may start its service (prometheus would listen on :9090 as a system service):
    # the cluster's supervisor runs them. policy-rc.d answering 101 forbids it, for invoke-rc.d
    # and deb-systemd-invoke alike; one put here for the install is removed after it.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # Nor at the next boot, where systemd runs: the monitoring packages enable their units.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable prometheus mtail >/dev/null 2>&1 || true
    fi
fi

say "consul"
bash scripts/install_consul.sh

want=$(cat requirements.txt requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    say "python packages into $VENV (pinned; torch is the local CPU build)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt -c requirements.lock
    echo "$want" > "$STAMP"
else
    say "python packages up to date in $VENV"
fi

if [ "${1:-}" = "--for-tests" ]; then
    say "test model with random weights (generated) and the MSRA corpus (sha256-checked)"
    "$VENV/bin/python" scripts/make_model.py .local/models/raner-tiny-random
    "$VENV/bin/python" -m scripts.fetch_msra
fi
