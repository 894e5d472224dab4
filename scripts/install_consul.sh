#!/usr/bin/env bash
# Install the Consul 1.8.7 binary into a project-local directory, sha256-verified.
# Debian 12 has no consul package; Debian 11 (bullseye) main does. We read the
# bullseye suite of the mirror this machine already uses through a private apt
# configuration, so the system's own sources are never touched.
set -euo pipefail

DEST=${1:-"$(cd "$(dirname "$0")/.." && pwd)/.local/bin"}
DEB_SHA256=e4e888bba104daba1d9161f49bfc52649a7e4efd45b1a7ead5bc54f2cb9c89d9
BIN_SHA256=a449efb10a03df3cb9310f3a54d933ccda7c4faba4f421f183fc90a82056798e
DEB_NAME=consul_1.8.7+dfsg1-2+b3_amd64.deb

if [ -x "$DEST/consul" ] && echo "$BIN_SHA256  $DEST/consul" | sha256sum -c --status; then
    echo "consul: $DEST/consul already installed"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$DEST"

# The mirror URI the machine already uses (deb822 or one-line format).
mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* \
    | grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//' \
    | sed -n 1p || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "deb $mirror bullseye main" > "$work/sources.list"

apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o "APT::Get::List-Cleanup=0")
echo "consul: fetching $DEB_NAME from $mirror (bullseye)"
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download consul=1.8.7+dfsg1-2+b3)

echo "$DEB_SHA256  $work/$DEB_NAME" | sha256sum -c --quiet
dpkg-deb --fsys-tarfile "$work/$DEB_NAME" | tar -xO ./usr/bin/consul > "$work/consul"
echo "$BIN_SHA256  $work/consul" | sha256sum -c --quiet
install -m 0755 "$work/consul" "$DEST/consul"
echo "consul: installed $("$DEST/consul" version | head -n1) at $DEST/consul"
