#!/bin/sh
# The gateway container's HTTPS listen: gateway-tls.sh ensure | rotate
#
#   ensure  (the entrypoint, before nginx starts) the certificate nginx presents, and
#           PREFIX/tls.d/gateway.conf, the snippet nginx.conf.tmpl includes
#   rotate  (operators) a new certificate, or the operator's replaced files, then nginx -t and a
#           reload: requests in flight finish on the old certificate, new connections get the new one
#             docker compose exec gateway /etc/ner-gateway/gateway-tls.sh rotate
#
# NER_TLS_CERT + NER_TLS_KEY: the operator's certificate chain and key (mounted files or compose
# secrets). Neither: scripts/tls issues a local CA and a certificate for NER_TLS_NAMES into
# NER_TLS_DIR (a volume; 0700, files 0600) at the first start and keeps them afterwards; clients
# trust NER_TLS_DIR/ca.pem. NER_GATEWAY_TLS=0: no HTTPS listen (plain HTTP only).
set -eu

action=${1:-ensure}
prefix=${NER_NGINX_PREFIX:-/run/ner-gateway}
listen=${NER_GATEWAY_TLS_LISTEN:-0.0.0.0:8443}
dir=${NER_TLS_DIR:-/tls}
names=${NER_TLS_NAMES:-localhost,127.0.0.1,::1,gateway}
snippet=$prefix/tls.d/gateway.conf
# python3 -m scripts.tls: the package is in /etc/ner-gateway (also under `docker compose exec`).
export PYTHONPATH="/etc/ner-gateway${PYTHONPATH:+:$PYTHONPATH}"

log() { printf '{"time":"%s","level":"INFO","logger":"gateway","event":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }

case $action in
    ensure) issue=ensure ;;
    rotate) issue=rotate ;;
    *) echo "usage: $0 ensure|rotate" >&2; exit 2 ;;
esac
mkdir -p "$prefix/tls.d"
case ${NER_GATEWAY_TLS:-1} in
    0 | false | no | off)
        rm -f "$snippet"
        log "https: off (NER_GATEWAY_TLS=${NER_GATEWAY_TLS}); plain HTTP only"
        exit 0
        ;;
esac

if [ -n "${NER_TLS_CERT:-}${NER_TLS_KEY:-}" ]; then
    for file in "${NER_TLS_CERT:-}" "${NER_TLS_KEY:-}"; do
        if [ -z "$file" ] || [ ! -r "$file" ]; then
            echo "gateway-tls: NER_TLS_CERT and NER_TLS_KEY must both name readable files" >&2
            exit 1
        fi
    done
    cert=$NER_TLS_CERT key=$NER_TLS_KEY
    log "https: $listen with the operator's certificate $cert"
else
    # Its stderr says whether a certificate was issued; that goes into the JSON line below.
    issued=$(python3 -m scripts.tls "$issue" --dir "$dir" --name gateway --names "$names" 2>&1 >/dev/null) || {
        echo "$issued" >&2
        exit 1
    }
    # The certificate alone: clients hold the CA already (gateway-chain.pem has both, for other tools).
    cert=$dir/gateway.pem key=$dir/gateway-key.pem
    log "https: $listen, $issued; clients trust the CA certificate $dir/ca.pem (docker compose exec gateway cat $dir/ca.pem > ner-ca.pem)"
fi
python3 -m scripts.tls nginx-snippet --listen "$listen" --cert "$cert" --key "$key" --out "$snippet"

if [ "$action" = rotate ]; then
    nginx -q -t -p "$prefix" -c "$prefix/nginx.conf"
    nginx -p "$prefix" -c "$prefix/nginx.conf" -s reload
    log "https: certificate sha256 $(python3 -m scripts.tls show --field sha256 "$cert") live after the reload"
fi
