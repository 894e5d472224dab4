"""The upstream template interpreter must render exactly what consul-template would."""

from __future__ import annotations

import itertools
import random
import re
import string
from pathlib import Path

import pytest

from upstream_renderer.dependency import Instance, ServiceQuery, aggregate_status
from upstream_renderer.nginx import NginxControl, fill_nginx_conf
from upstream_renderer.runner import Runner
from upstream_renderer.template import Template, TemplateError, render
from upstream_renderer.watch import Consul

NGINX_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx-template"

UPSTREAM_TEMPLATE = (NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text()


def instance(
    node: str = "n1",
    id: str = "w1",
    status: str = "passing",
    address: str = "10.0.0.1",
    port: int = 8000,
    name: str = "ner-worker",
) -> Instance:
    return Instance(node=node, id=id, name=name, address=address, port=port, status=status)


def entry(
    node: str,
    id: str,
    port: int,
    checks: list[tuple[str, str]],
    address: str = "10.0.0.9",
    node_address: str = "10.0.0.1",
) -> dict:
    """A /v1/health/service element as Consul 1.8 returns it."""
    return {
        "Node": {"Node": node, "Address": node_address},
        "Service": {"ID": id, "Service": "ner-worker", "Address": address, "Port": port},
        "Checks": [{"CheckID": cid, "Status": status} for cid, status in checks],
    }


def server_lines(text: str, upstream: str = "ner_workers") -> list[str]:
    """The server lines of one upstream block of a rendered file."""
    block = text.split(f"upstream {upstream} {{", 1)[1].split("\n}", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("server ")]


# --------------------------------------------------------------------------- interpreter


def test_range_renders_body_once_per_instance_with_fields():
    text = '{{ range service "ner-worker" }}[{{ .ID }} {{ .Address }}:{{ .Port }} {{ .Node }}]{{ end }}'
    out = render(text, [instance(id="a", port=1), instance(id="b", port=2)])
    assert out == "[a 10.0.0.1:1 n1][b 10.0.0.1:2 n1]"


def test_range_else_branch_renders_when_no_instance_matches():
    text = '{{ range service "ner-worker" }}x{{ else }}none{{ end }}'
    assert render(text, []) == "none"
    assert render(text, [instance(status="critical")]) == "none"


def test_if_eq_chooses_branch_by_status():
    text = '{{ range service "ner-worker|passing,warning" }}{{ if eq .Status "warning" }}W{{ else }}P{{ end }}{{ end }}'
    out = render(text, [instance(id="a"), instance(id="b", status="warning")])
    assert out == "PW"


def test_if_without_else_renders_nothing_when_false():
    text = '{{ range service "ner-worker" }}{{ if eq .ID "zzz" }}hit{{ end }}.{{ end }}'
    assert render(text, [instance()]) == "."


def test_trim_markers_remove_surrounding_whitespace_and_newlines():
    text = 'a  \n\t{{- range service "ner-worker" }} \n x {{ end -}}  \n b'
    assert render(text, [instance()]) == "a \n x b"


def test_dash_without_space_is_not_a_trim_marker_but_a_negative_number_like_go():
    assert render("a {{-3}}", []) == "a -3"


def test_comments_render_nothing_and_may_trim():
    text = "a\n{{/* one\nline two */}}\nb\n{{- /* trimmed */ -}}\nc"
    assert render(text, []) == "a\n\nbc"


def test_comment_with_space_before_it_is_rejected_like_go():
    with pytest.raises(TemplateError):
        render("{{ /* not a comment */ }}", [])


@pytest.mark.parametrize(
    "source",
    [
        '{{ .Address | printf "%s" }}',
        "{{ range nodes }}{{ end }}",
        '{{ range service "web.ner-worker" }}{{ end }}',
        '{{ range service "ner-worker@dc2" }}{{ end }}',
        '{{ range service "ner-worker|bogus" }}{{ end }}',
        '{{ if ne .ID "x" }}{{ end }}',
        '{{ range service "ner-worker" }}{{ if eq .ID "a" }}{{ else if eq .ID "b" }}{{ end }}{{ end }}',
        '{{ range service "ner-worker" }}{{ .Tags }}{{ end }}',
        '{{ range service "ner-worker" }}no end',
        "{{ end }}",
        "{{ .ID",
        '{{ key "x" }}',
    ],
)
def test_unsupported_or_malformed_syntax_raises_a_clear_error(source):
    with pytest.raises(TemplateError):
        render(source, [instance()])


def test_error_message_names_the_line():
    with pytest.raises(TemplateError, match="line 3"):
        render("a\nb\n{{ range nodes }}{{ end }}", [])


def test_eq_on_different_types_is_an_error_like_go():
    with pytest.raises(TemplateError, match="incompatible"):
        render('{{ range service "ner-worker" }}{{ if eq .Port "8000" }}{{ end }}{{ end }}', [instance()])


def test_field_outside_range_is_an_error():
    with pytest.raises(TemplateError, match="outside range"):
        render("{{ .Address }}", [])


def test_template_service_name_comes_from_the_service_call():
    assert Template.parse(UPSTREAM_TEMPLATE).service_name() == "ner-worker"


# --------------------------------------------------------------------------- consul-template semantics


def test_service_without_filter_returns_passing_only():
    text = '{{ range service "ner-worker" }}{{ .ID }} {{ end }}'
    out = render(text, [instance(id="p"), instance(id="w", status="warning"), instance(id="c", status="critical")])
    assert out == "p "


def test_passing_warning_filter_includes_warning_but_not_critical_or_maintenance():
    text = '{{ range service "ner-worker|passing,warning" }}{{ .ID }} {{ end }}'
    out = render(
        text,
        [
            instance(id="p"),
            instance(id="w", status="warning"),
            instance(id="c", status="critical"),
            instance(id="m", status="maintenance"),
        ],
    )
    assert out == "p w "


def test_any_filter_returns_every_status():
    text = '{{ range service "ner-worker|any" }}{{ .ID }} {{ end }}'
    out = render(text, [instance(id="a"), instance(id="b", status="critical")])
    assert out == "a b "


@pytest.mark.parametrize(
    "checks, expected",
    [
        ([], "passing"),
        ([("serfHealth", "passing"), ("service:w1", "passing")], "passing"),
        ([("serfHealth", "passing"), ("service:w1", "warning")], "warning"),
        ([("serfHealth", "critical"), ("service:w1", "warning")], "critical"),
        ([("service:w1", "warning"), ("service:w1:2", "critical")], "critical"),
        (
            [("serfHealth", "passing"), ("_service_maintenance:w1", "critical"), ("service:w1", "passing")],
            "maintenance",
        ),
        ([("_node_maintenance", "critical"), ("service:w1", "passing")], "maintenance"),
        ([("service:w1", "bogus")], ""),
    ],
)
def test_status_aggregates_all_checks_worst_first(checks, expected):
    assert aggregate_status([{"CheckID": c, "Status": s} for c, s in checks]) == expected


def test_instance_address_falls_back_to_node_address():
    assert Instance.from_health_entry(entry("n1", "w", 1, [], address="")).address == "10.0.0.1"
    assert Instance.from_health_entry(entry("n1", "w", 1, [], address="10.0.0.9")).address == "10.0.0.9"


def test_instances_are_ordered_by_node_then_service_id():
    shuffled = [
        instance(node="b", id="1"),
        instance(node="a", id="2"),
        instance(node="a", id="10"),
        instance(node="c", id="0"),
    ]
    query = ServiceQuery.parse("ner-worker")
    assert [(i.node, i.id) for i in query.select(shuffled)] == [("a", "10"), ("a", "2"), ("b", "1"), ("c", "0")]


def test_service_override_selects_another_service_name():
    text = '{{ range service "ner-worker" }}{{ .ID }}{{ end }}'
    assert render(text, [instance(id="x", name="other")], service="other") == "x"
    assert render(text, [instance(id="x", name="other")]) == ""


# --------------------------------------------------------------------------- the real upstream template


def test_upstream_gives_warning_instances_a_lower_weight():
    lines = server_lines(
        render(UPSTREAM_TEMPLATE, [instance(id="p", port=1), instance(id="w", port=2, status="warning")])
    )
    assert lines[0].startswith("server 10.0.0.1:1 weight=10 ")
    assert lines[1].startswith("server 10.0.0.1:2 weight=1 ")


def test_upstream_excludes_critical_and_maintenance_instances():
    lines = server_lines(
        render(
            UPSTREAM_TEMPLATE,
            [instance(id="c", status="critical"), instance(id="m", status="maintenance"), instance(id="p", port=3)],
        )
    )
    assert len(lines) == 1 and "10.0.0.1:3" in lines[0]


def test_empty_set_renders_an_upstream_that_is_never_empty():
    out = render(UPSTREAM_TEMPLATE, [])
    assert server_lines(out) == ["server 127.0.0.1:1 max_fails=0;"]
    assert re.search(r"upstream ner_workers \{.*least_conn;.*keepalive 32;.*\}", out, re.S)


def test_rendering_is_byte_identical_for_the_same_state_in_any_order():
    entries = [
        entry(f"node-{n}", f"w-{i}", 8000 + i, [("serfHealth", "passing"), (f"service:w-{i}", s)])
        for n, i, s in [(2, 1, "passing"), (1, 2, "warning"), (1, 3, "passing"), (3, 4, "critical")]
    ]
    outputs = {render(UPSTREAM_TEMPLATE, list(order)) for order in itertools.permutations(entries)}
    assert len(outputs) == 1
    ports = [line.split()[1] for line in server_lines(outputs.pop())]
    assert ports == ["10.0.0.9:8002", "10.0.0.9:8003", "10.0.0.9:8001"]


def test_random_states_render_deterministically():
    rng = random.Random(7)
    pool = [
        instance(
            node=f"n{rng.randint(1, 3)}",
            id=f"id{i}",
            port=9000 + i,
            status=rng.choice(["passing", "warning", "critical"]),
        )
        for i in range(12)
    ]
    first = render(UPSTREAM_TEMPLATE, pool)
    for _ in range(20):
        rng.shuffle(pool)
        assert render(UPSTREAM_TEMPLATE, pool) == first


# --------------------------------------------------------------------------- nginx.conf


def test_nginx_conf_template_fills_every_placeholder_and_keeps_nginx_variables():
    text = fill_nginx_conf(
        (NGINX_TEMPLATE_DIR / "nginx.conf.tmpl").read_text(),
        prefix="/srv/gw",
        upstream_conf="/srv/gw/upstream.conf",
        listen="0.0.0.0:8080",
    )
    assert "${" not in text and "$$" not in text
    assert "listen 0.0.0.0:8080;" in text and "include /srv/gw/upstream.conf;" in text
    assert "$request_id" in text and "$proxy_add_x_forwarded_for" in text
    # plain string.Template, as other starters of nginx use it
    string.Template((NGINX_TEMPLATE_DIR / "nginx.conf.tmpl").read_text()).substitute(
        PREFIX="/p", LISTEN="127.0.0.1:1", UPSTREAM_CONF="/p/u.conf"
    )


# --------------------------------------------------------------------------- applying a rendered upstream


def make_runner(tmp_path: Path, check_cmd: list[str], existing: str | None = None) -> Runner:
    out = tmp_path / "upstream.conf"
    if existing is not None:
        out.write_text(existing)
    counter = tmp_path / "reloads"
    nginx = NginxControl(check_cmd=check_cmd, reload_cmd=["/bin/sh", "-c", f"echo . >> {counter}"])
    return Runner(Template.parse(UPSTREAM_TEMPLATE), "ner-worker", Consul("127.0.0.1:1"), out, nginx, (0.2, 2.0))


def reloads(tmp_path: Path) -> int:
    counter = tmp_path / "reloads"
    return len(counter.read_text().split()) if counter.exists() else 0


def test_failed_config_test_restores_the_last_good_file_and_skips_reload(tmp_path):
    runner = make_runner(tmp_path, ["false"], existing="good\n")
    assert not runner.apply("broken\n", 1).ok
    assert (tmp_path / "upstream.conf").read_text() == "good\n"
    assert reloads(tmp_path) == 0


def test_unchanged_text_is_not_written_or_reloaded_again(tmp_path):
    runner = make_runner(tmp_path, ["true"], existing="old\n")
    assert runner.apply("new\n", 1).changed
    assert not runner.apply("new\n", 1).changed
    assert reloads(tmp_path) == 1


def test_existing_file_with_the_same_text_needs_no_reload_at_start(tmp_path):
    runner = make_runner(tmp_path, ["true"], existing="same\n")
    assert not runner.apply("same\n", 1).changed
    assert reloads(tmp_path) == 0


def test_a_refused_first_candidate_leaves_no_file_rather_than_a_broken_one(tmp_path):
    runner = make_runner(tmp_path, ["false"])
    assert not runner.apply("broken\n", 1).ok
    assert not (tmp_path / "upstream.conf").exists()


def test_a_refused_candidate_is_not_tested_again(tmp_path):
    runner = make_runner(tmp_path, ["/bin/sh", "-c", f"echo . >> {tmp_path / 'checks'}; exit 1"], existing="good\n")
    runner.apply("broken\n", 1)
    runner.apply("broken\n", 1)
    assert len((tmp_path / "checks").read_text().split()) == 1
