#!/usr/bin/env bash
# Install what the cluster and its tests need, idempotently: nginx (Debian package),
# the Consul 1.8.7 binary (project-local, sha256-verified), a project-local virtualenv
# with the pinned Python packages, and the generated default model.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.requirements.sha256"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    say "installing nginx (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    say "installing chromium, chromedriver and a Chinese font (browser test of the web page)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-zenhei >/dev/null
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

say "default model"
"$VENV/bin/python" scripts/make_model.py "${NER_MODEL_DIR:-.local/models/raner-tiny-random}"
