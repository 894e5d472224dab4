"""Keep nginx's upstream in step with Consul's healthy `ner-worker` instances.

The gateway's renderer where the consul-template binary is not available, laid out like
consul-template: it renders the *same* template file (upstream.ctmpl) with a small interpreter
of the Go-template subset that file uses (template/), with consul-template's semantics:

* `service "name"` returns passing instances only; `service "name|passing,warning"`
  returns instances whose aggregated status is in the list ("any" accepts all).
* An instance's status aggregates all its checks (node checks included):
  maintenance > critical > warning > passing; no checks means passing.
* Instances are sorted by node name, then by service ID.
* `.Address` is the service address, or the node address when that is empty.

Beyond consul-template, a change that only moves weights or warning states (the same
`server address:port` members) reloads nginx at most once per `--hold-down` (holddown):
every reload closes idle client keep-alive connections, and an overloaded worker's health
flaps between passing and warning every few seconds. A member joining or leaving is never held.

Anything outside the subset raises TemplateError, so a template that consul-template would
render differently is refused instead of guessed at.

Run `python3 -m upstream_renderer --help` for the command line (nginx-template/ on the path).
Local tooling can call `upstream_renderer.template.render(template_text, instances)` and
`upstream_renderer.nginx.fill_nginx_conf(...)` directly.
"""
