# consul-template settings for the gateway container (nginx-template/Dockerfile).
# The Consul address comes from CONSUL_HTTP_ADDR (or -consul-addr), the token from
# CONSUL_HTTP_TOKEN / CONSUL_TOKEN; neither is written here.
#
# TLS to Consul (the secured compose form: CONSUL_HTTP_ADDR=https://consul:8500 and
# CONSUL_CACERT=/consul-ca/ca.pem) comes from the environment too: consul-template builds its
# Consul client on the API's DefaultConfig, which reads CONSUL_HTTP_ADDR's https://, CONSUL_HTTP_SSL,
# CONSUL_CACERT and CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY, and verifies the server against that CA
# (dependency/client_set.go). No `consul { ssl { ... } }` block: the same file serves the normal
# form, whose Consul speaks plain HTTP; a block here would turn TLS on for both. A form that wants
# it written out adds a second -config file with
#   consul { ssl { enabled = true  verify = true  ca_cert = "/consul-ca/ca.pem" } }

# SIGTERM is what `docker stop` sends: stop at once, nginx keeps the last rendered upstream
# until the container's entrypoint stops it.
kill_signal = "SIGTERM"
reload_signal = "SIGHUP"
log_level = "info"

# Any Consul server may answer (a follower is milliseconds behind the leader), unless it has
# not heard from the leader for 2 s; then the leader is asked. Leader-only reads would leave
# a long poll hanging on a leader that dropped off the network until the poll times out.
max_stale = "2s"
# Long-poll for at most 60 s: a quiet cluster costs one request per minute.
block_query_wait = "60s"

consul {
  retry {
    enabled = true
    # Never give up: a gateway without Consul keeps serving the last upstream (nginx does not
    # need consul-template to be up) and catches up as soon as Consul answers again.
    attempts = 0
    backoff = "250ms"
    max_backoff = "10s"
  }
}

template {
  source = "/etc/ner-gateway/upstream.ctmpl"
  destination = "/run/ner-gateway/upstream.conf"
  create_dest_dirs = true
  perms = 0644
  # Quiescence, the same as upstream_renderer's default: a change is applied once Consul
  # has been quiet for 200 ms (a scale-out of N workers becomes one reload, not N), and never
  # later than 2 s after the first change, so a draining worker leaves the upstream well
  # within its NER_DRAIN_SECONDS (3 s) of still serving.
  wait {
    min = "200ms"
    max = "2s"
  }
  # Test, then reload; a config that fails `nginx -t` is replaced by the last good one and
  # nginx keeps running what it has.
  command = "/etc/ner-gateway/reload-nginx.sh /run/ner-gateway /run/ner-gateway/nginx.conf /run/ner-gateway/upstream.conf"
  command_timeout = "30s"
  error_on_missing_key = true
}
