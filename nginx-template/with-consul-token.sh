#!/bin/sh
# Entrypoint of the gateway and worker images: with-consul-token.sh TOKEN_FILE COMMAND [ARGS...]
#
# Secured compose form (docs/SECURITY.md): the role's Consul token is read from the read-only
# secrets volume into CONSUL_HTTP_TOKEN, then COMMAND replaces this shell. No token file (the
# normal form) or a CONSUL_HTTP_TOKEN already set: the environment is left as it is. The token
# is never printed; this file lives with the gateway's files (the worker image copies it from here too).
set -eu
token_file=$1
shift
if [ -z "${CONSUL_HTTP_TOKEN:-}" ] && [ -s "$token_file" ]; then
    CONSUL_HTTP_TOKEN=$(cat "$token_file")
    export CONSUL_HTTP_TOKEN
fi
exec "$@"
