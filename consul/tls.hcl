# Secured Consul's TLS policy: the HTTP API (and the UI) over HTTPS only, RPC between agents verified.
#
# Holds no path and no secret. Each form adds the files (CA, certificate, key) and turns the
# plain HTTP listener off, HTTPS on in its place (`ports { http = -1, https = N }`):
#   local mode   RUN_DIR/consul-tls.json (files in RUN_DIR/tls/) and RUN_DIR/consul-ports.json,
#                both written by scripts/localmode/consul.py
#   compose      consul/compose-tls.json (files from the consul-tls one-shot's volumes)
# Certificates are read again on `consul reload` (SIGHUP): rotation needs no restart.
#
# Top-level keys, not the `tls { defaults { ... } }` block: Consul 1.8 (local mode) rejects that
# block ("invalid config key tls"); 1.12+ (the compose image, 1.20) maps these keys onto it and
# logs a deprecation warning for each (agent/config/deprecated.go).

# HTTPS clients are not asked for a certificate: they verify Consul's, and their ACL token says
# who they are. Asking for one would lock out the UI in a browser and every client without one.
verify_incoming = false
verify_incoming_https = false

# RPC between agents (servers and client agents of other hosts) is mutual TLS with the cluster's
# CA, and a server must hold a certificate for server.<datacenter>.consul.
verify_incoming_rpc = true
verify_outgoing = true
verify_server_hostname = true
