"""Model versions side by side in the upstream template: byMeta groups, KV shares, pins, and the renderer's
rules for them (a split change applies at once; a KV read that fails keeps the last good upstream)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fake_clock import FakeClock
from upstream_renderer.dependency import Instance
from upstream_renderer.holddown import HoldDown, routing
from upstream_renderer.nginx import NginxControl
from upstream_renderer.runner import Runner
from upstream_renderer.template import Template, TemplateError, render
from upstream_renderer.template.functions import MissingKey
from upstream_renderer.watch import ConsulUnavailable

NGINX_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx-template"
UPSTREAM_TEMPLATE = (NGINX_TEMPLATE_DIR / "upstream.ctmpl").read_text()
OLD, NEW = "raner-msra-lstm@3f2a", "raner-msra-lstm-v2@1.1"


def worker(port: int, ref: str, status: str = "passing") -> Instance:
    model, version = ref.split("@")
    return Instance(
        node="n1",
        id=f"w{port}",
        name="ner-worker",
        address="127.0.0.1",
        port=port,
        status=status,
        meta={"model": model, "model_version": version},
    )


FLEET = [worker(1, OLD), worker(2, OLD), worker(3, NEW)]


def shares(old: str, new: str) -> dict[str, str]:
    return {f"ner/rollout/weights/{OLD}": old, f"ner/rollout/weights/{NEW}": new}


def block(text: str, opening: str) -> list[str]:
    """The lines inside one `opening {` ... `}` block of a rendered upstream file."""
    inner = text.split(opening + " {", 1)[1].split("\n}", 1)[0]
    return [line.strip() for line in inner.splitlines() if line.strip() and not line.strip().startswith("#")]


# --------------------------------------------------------------------------- the functions


def test_by_meta_groups_by_the_joined_values_with_unsafe_characters_made_underscores():
    text = '{{ range $k, $g := service "ner-worker" | byMeta "model,model_version" }}{{ $k }}={{ len $g }};{{ end }}'
    assert render(text, FLEET) == "raner-msra-lstm-v2_1_1=1;raner-msra-lstm_3f2a=2;"


def test_by_meta_names_a_missing_value_like_consul_template():
    text = '{{ range $k, $g := service "ner-worker" | byMeta "model" }}{{ $k }}{{ end }}'
    bare = Instance(node="n1", id="w", name="ner-worker", address="a", port=1, status="passing")
    assert render(text, [bare]) == "_no_model_"


def test_key_or_default_gives_the_default_for_an_absent_or_empty_key():
    text = '{{ keyOrDefault "a" "d" }} {{ keyOrDefault "b" "d" }} {{ keyOrDefault "c" "d" }}'
    assert render(text, [], keys={"a": "1", "b": ""}) == "1 d d"


def test_key_that_consul_does_not_hold_stops_the_render():
    with pytest.raises(MissingKey):
        render('{{ key "absent" }}', [], keys={})


def test_printf_index_and_with_compose_as_in_go():
    text = '{{ with index (service "ner-worker") 0 }}{{ printf "%s@%s:%d" (index .ServiceMeta "model") .ID .Port }}{{ end }}'
    assert render(text, FLEET) == "raner-msra-lstm@w1:1"


def test_assignment_inside_range_changes_the_outer_variable():
    text = '{{ $sep := "" }}{{ range service "ner-worker" }}{{ $sep }}{{ .Port }}{{ $sep = "," }}{{ end }}'
    assert render(text, FLEET) == "1,2,3"


def test_missing_map_field_is_an_error_like_error_on_missing_key():
    with pytest.raises(TemplateError, match="no entry"):
        render('{{ range service "ner-worker" }}{{ .ServiceMeta.absent }}{{ end }}', FLEET)


def test_a_field_chained_after_parentheses_is_refused_rather_than_misread():
    with pytest.raises(TemplateError, match="after"):
        render('{{ (index (service "ner-worker") 0).ID }}', FLEET)


# --------------------------------------------------------------------------- the real template


def test_each_live_version_gets_an_upstream_of_its_own_instances():
    text = render(UPSTREAM_TEMPLATE, FLEET)
    assert [line.split()[1] for line in block(text, "upstream ner_v_raner-msra-lstm_3f2a") if "server" in line] == [
        "127.0.0.1:1",
        "127.0.0.1:2",
    ]
    assert [line.split()[1] for line in block(text, "upstream ner_v_raner-msra-lstm-v2_1_1") if "server" in line] == [
        "127.0.0.1:3"
    ]


def test_shares_from_kv_become_split_clients_percentages_and_the_rest_goes_to_every_instance():
    text = render(UPSTREAM_TEMPLATE, FLEET, keys=shares("90", "10"))
    assert block(text, 'split_clients "$request_id" $ner_split') == [
        "10% ner_v_raner-msra-lstm-v2_1_1;",
        "90% ner_v_raner-msra-lstm_3f2a;",
        "* ner_workers;",
    ]


def test_without_any_share_every_request_goes_to_every_instance():
    text = render(UPSTREAM_TEMPLATE, FLEET, keys={})
    assert block(text, 'split_clients "$request_id" $ner_split') == ["* ner_workers;"]


def test_a_zero_share_is_left_out_because_nginx_refuses_zero_percent():
    text = render(UPSTREAM_TEMPLATE, FLEET, keys=shares("100", "0"))
    assert block(text, 'split_clients "$request_id" $ner_split') == [
        "100% ner_v_raner-msra-lstm_3f2a;",
        "* ner_workers;",
    ]


def test_a_share_of_a_version_without_live_instances_is_not_listed():
    text = render(UPSTREAM_TEMPLATE, [worker(1, OLD)], keys=shares("90", "10"))
    assert block(text, 'split_clients "$request_id" $ner_split') == [
        "90% ner_v_raner-msra-lstm_3f2a;",
        "* ner_workers;",
    ]


def test_pins_map_each_live_version_to_its_upstream_and_anything_else_to_unknown():
    text = render(UPSTREAM_TEMPLATE, FLEET)
    assert block(text, "map $http_x_model_version $ner_pinned") == [
        'default "unknown";',
        '"" "";',
        f'"{NEW}" ner_v_raner-msra-lstm-v2_1_1;',
        f'"{OLD}" ner_v_raner-msra-lstm_3f2a;',
    ]


def test_live_versions_are_a_json_list_for_the_unknown_pin_answer():
    assert 'default \'["raner-msra-lstm-v2@1.1","raner-msra-lstm@3f2a"]\';' in render(UPSTREAM_TEMPLATE, FLEET)
    assert "default '[]';" in render(UPSTREAM_TEMPLATE, [])


def test_the_template_reads_kv_and_watches_one_service():
    template = Template.parse(UPSTREAM_TEMPLATE)
    assert template.uses_keys() and template.service_name() == "ner-worker"


# --------------------------------------------------------------------------- the renderer's rules


def test_a_split_change_is_applied_at_once_even_within_the_weight_hold_down():
    clock = FakeClock()
    gate = HoldDown(15.0, clock)
    first = render(UPSTREAM_TEMPLATE, FLEET, keys=shares("100", "0"))
    weights = render(UPSTREAM_TEMPLATE, [worker(1, OLD, "warning"), *FLEET[1:]], keys=shares("100", "0"))
    gate.applied(gate.decide(first, weights))
    clock.now = 1.0
    decision = gate.decide(weights, render(UPSTREAM_TEMPLATE, FLEET, keys=shares("90", "10")))
    assert decision.apply and decision.change == "split"


def test_a_status_flap_alone_is_still_a_weight_change():
    a = render(UPSTREAM_TEMPLATE, FLEET, keys=shares("90", "10"))
    b = render(UPSTREAM_TEMPLATE, [worker(1, OLD, "warning"), *FLEET[1:]], keys=shares("90", "10"))
    assert routing(a) == routing(b)


class _Consul:
    """Health answers with the fleet; the KV read is what each test makes it."""

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        entries = [
            {
                "Node": {"Node": "n1", "Address": "127.0.0.1"},
                "Service": {
                    "ID": i.id,
                    "Service": "ner-worker",
                    "Address": i.address,
                    "Port": i.port,
                    "Meta": dict(i.meta),
                },
                "Checks": [{"CheckID": "serfHealth", "Status": "passing"}],
            }
            for i in FLEET
        ]
        return entries, 7


def _runner(tmp_path: Path, keys) -> Runner:
    nginx = NginxControl(check_cmd=["true"], reload_cmd=["true"])
    return Runner(
        Template.parse(UPSTREAM_TEMPLATE), "ner-worker", _Consul(), tmp_path / "up.conf", nginx, (0.2, 2.0), keys=keys
    )


def test_kv_unreachable_keeps_the_last_good_split_instead_of_rendering_defaults(tmp_path):
    good = render(UPSTREAM_TEMPLATE, FLEET, keys=shares("90", "10"))
    (tmp_path / "up.conf").write_text(good)

    def unreachable() -> dict[str, str]:
        raise ConsulUnavailable("connection refused", reached=False)

    runner = _runner(tmp_path, unreachable)
    runner.signals.sleep = lambda seconds: None
    runner.clock = FakeClock()
    assert runner.run_once(deadline_seconds=0.0) == 1
    assert (tmp_path / "up.conf").read_text() == good


def test_kv_answering_again_renders_the_new_split(tmp_path):
    (tmp_path / "up.conf").write_text(render(UPSTREAM_TEMPLATE, FLEET, keys=shares("90", "10")))
    runner = _runner(tmp_path, lambda: shares("50", "50"))
    assert runner.run_once() == 0
    assert "50% ner_v_raner-msra-lstm-v2_1_1;" in (tmp_path / "up.conf").read_text()
