#!/bin/bash
# Gateway container: fill nginx.conf, its HTTPS listen (gateway-tls.sh: the operator's
# certificate or a generated one), start nginx on a placeholder upstream, and keep the
# upstream in step with Consul with consul-template, or with the project renderer, the
# upstream_renderer package (the same template, the same output), when the consul-template binary
# is not in the image.
# Either process exiting stops the container, so the restart policy starts a whole gateway.
set -euo pipefail

etc=/etc/ner-gateway
prefix=${NER_NGINX_PREFIX:-/run/ner-gateway}
listen=${NER_GATEWAY_LISTEN:-0.0.0.0:8080}
consul=${CONSUL_HTTP_ADDR:-consul:8500}
conf=$prefix/nginx.conf
upstream=$prefix/upstream.conf

log() { printf '{"time":"%s","level":"INFO","logger":"gateway","event":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }
# python3 -m upstream_renderer: the package is in $etc.
export PYTHONPATH="$etc${PYTHONPATH:+:$PYTHONPATH}"

# nginx's worker processes run as nobody: the prefix must be enterable by it.
mkdir -p "$prefix/logs" "$prefix/limits.d" "$prefix/tls.d"
chmod 755 "$prefix"
# With the upstream the template renders for no instance, nginx starts now and answers a fast
# JSON 503 until the first real render.
python3 -m upstream_renderer fill-nginx-conf --conf-template "$etc/nginx.conf.tmpl" --prefix "$prefix" \
    --listen "$listen" --upstream-conf "$upstream" --empty-upstream "$etc/upstream.ctmpl"
# Secured compose form: scripts/securemode.py is mounted here and writes the per-client rate
# limit (NER_GATEWAY_RATE / NER_GATEWAY_BURST, secure defaults). Absent: no limit, as before.
if [ -f "$etc/securemode.py" ]; then
    python3 "$etc/securemode.py" limits --out "$prefix/limits.d/rate.conf"
fi
"$etc/gateway-tls.sh" ensure
nginx -q -t -p "$prefix" -c "$conf"
cp "$upstream" "$upstream.good"

nginx -p "$prefix" -c "$conf" -e "$prefix/error.log" &
nginx_pid=$!
for _ in $(seq 50); do [ -s "$prefix/nginx.pid" ] && break; sleep 0.1; done

if command -v consul-template >/dev/null 2>&1; then
    log "renderer: consul-template $(consul-template -version 2>&1 | head -n1) with $etc/consul-template.hcl, consul at $consul"
    consul-template -config "$etc/consul-template.hcl" -consul-addr "$consul" &
else
    log "renderer: consul-template not found in the image; using the project renderer upstream_renderer, consul at $consul"
    python3 -m upstream_renderer --consul "$consul" --template "$etc/upstream.ctmpl" \
        --out "$upstream" --nginx-bin "$(command -v nginx)" --nginx-prefix "$prefix" --nginx-conf "$conf" \
        --wait 200ms:2s &
fi
renderer_pid=$!

stop() {
    log "stopping: renderer first, then nginx finishes in-flight requests (SIGQUIT)"
    kill -TERM "$renderer_pid" 2>/dev/null || true
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    exit 0
}
trap stop TERM INT

set +e
wait -n "$nginx_pid" "$renderer_pid"
status=$?
log "a gateway process exited (status $status); stopping the container"
kill -TERM "$renderer_pid" 2>/dev/null
kill -QUIT "$nginx_pid" 2>/dev/null
wait
exit "${status/#0/1}"
