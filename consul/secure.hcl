# Secured Consul: ACLs with default deny, and gossip that must be encrypted.
#
# Holds no secret. Combine it with the mode's own config and a secrets file, e.g. local mode
# (`make up SECURE=1`, scripts/localcluster.py):
#
#   consul agent -server -bootstrap-expect=1 -data-dir=RUN_DIR/consul-data -ui \
#     -config-file=consul/local.json -config-file=consul/secure.hcl \
#     -config-file=RUN_DIR/secrets/consul-gossip.json \
#     -config-file=consul/tls.hcl -config-file=RUN_DIR/consul-tls.json
#
# (the gossip file is {"encrypt": "<consul keygen>"}, 0600; tls.hcl and its files file put the API
# on HTTPS only.)
# docker-compose.secure.yml mounts this file read-only and the gossip file from a volume (docs/SECURITY.md).
# Tokens are never put here: the bootstrap token comes from `consul acl bootstrap`, the role
# tokens from scripts/securemode.py, and the agent's own token is set through the API and kept
# by enable_token_persistence in DATA_DIR/acl-tokens.json (0600).

acl {
  enabled = true
  # Anything a token does not grant is refused, including every anonymous request.
  default_policy = "deny"
  # Tokens set with `consul acl set-agent-token` / PUT /v1/agent/token/* survive restarts.
  enable_token_persistence = true
  # A client agent that cannot reach the servers keeps using cached ACL decisions.
  down_policy = "extend-cache"
}

# Gossip without the key (set by `encrypt` in the secrets file) is rejected both ways.
encrypt_verify_incoming = true
encrypt_verify_outgoing = true

# Nothing runs commands on behalf of a request.
disable_remote_exec = true
enable_script_checks = false
enable_local_script_checks = false
disable_update_check = true

# Metrics at /v1/agent/metrics?format=prometheus (read with an agent:read token, e.g. the
# prometheus role's). Kept for a minute after their last update, longer than a scrape interval.
telemetry {
  prometheus_retention_time = "60s"
  disable_hostname = true
}
