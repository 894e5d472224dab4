#!/bin/sh
# consul-template's command after it rendered the upstream: test the new config and
# reload nginx only if it passes; otherwise put back the last upstream that passed,
# so nginx never runs with a broken config.
# Usage: reload-nginx.sh NGINX_PREFIX NGINX_CONF UPSTREAM_FILE
set -u
prefix=$1 conf=$2 upstream=$3
nginx=${NGINX_BIN:-nginx}
if "$nginx" -q -t -p "$prefix" -c "$conf"; then
    cp "$upstream" "$upstream.good"
    exec "$nginx" -p "$prefix" -c "$conf" -s reload
fi
echo "reload-nginx: new upstream fails nginx -t; keeping the last good one" >&2
if [ -f "$upstream.good" ]; then
    cp "$upstream.good" "$upstream"
fi
exit 1
