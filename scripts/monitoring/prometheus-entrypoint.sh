#!/bin/bash
# Prometheus container: fill the configuration from the environment, then run Prometheus and the
# Consul discovery side by side. Either one exiting stops the container, so the restart policy
# starts both again.
#   CONSUL_HTTP_ADDR                 Consul's HTTP API (default consul:8500; https://consul:8500 for TLS)
#   CONSUL_CACERT                    the CA an https Consul's certificate must chain to (discovery and scrape)
#   NER_PROMETHEUS_SCRAPE_INTERVAL, NER_PROMETHEUS_EVALUATION_INTERVAL, NER_PROMETHEUS_SD_REFRESH
#   NER_WORKERS_WANTED               the workers the cluster is meant to run (--scale worker=N)
#   NER_GATEWAY_METRICS              host:port of the gateway's metrics (mtail), if any
#   NER_PROMETHEUS_TOKEN_FILE        a read-only Consul token (secured form), default /secrets/prometheus.token
set -euo pipefail

etc=/etc/ner-prometheus
data=/prometheus
consul=${CONSUL_HTTP_ADDR:-consul:8500}
token=${NER_PROMETHEUS_TOKEN_FILE:-/secrets/prometheus.token}

log() { printf '{"time":"%s","level":"INFO","logger":"prometheus-entrypoint","event":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }

if [ -r "$token" ]; then
    export NER_PROMETHEUS_TOKEN_FILE=$token
    CONSUL_HTTP_TOKEN=$(cat "$token")
    export CONSUL_HTTP_TOKEN
else
    unset NER_PROMETHEUS_TOKEN_FILE
fi
python3 "$etc/prometheus_conf.py" --out "$data/prometheus.yml" --data "$data"
log "configuration written; workers from Consul at $consul"

python3 "$etc/consul_file_sd.py" --consul "$consul" --service ner-worker --out "$data/targets/ner-worker.json" &
discovery_pid=$!
prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/data" \
    --web.listen-address=0.0.0.0:9090 --web.enable-lifecycle --log.format=json &
prometheus_pid=$!

stop() {
    kill -TERM "$discovery_pid" "$prometheus_pid" 2>/dev/null || true
    wait "$prometheus_pid" 2>/dev/null || true
    exit 0
}
trap stop TERM INT

set +e
wait -n "$discovery_pid" "$prometheus_pid"
status=$?
log "a monitoring process exited (status $status); stopping the container"
kill -TERM "$discovery_pid" "$prometheus_pid" 2>/dev/null
wait
exit "${status/#0/1}"
