"""Local mode's monitoring settings: on by default, NER_MONITOR=0 leaves it out, intervals checked at once."""

from __future__ import annotations

import pytest

from scripts.localmode.config import load_config, on_free_ports


def test_monitoring_is_on_by_default_with_prometheus_on_9090():
    config = load_config({})
    assert config.monitor is True and config.prometheus_port == 9090
    assert config.prometheus_url == "http://127.0.0.1:9090"


@pytest.mark.parametrize("value", ["0", "no", "off"])
def test_monitor_0_leaves_monitoring_out(value):
    assert load_config({"NER_MONITOR": value}).monitor is False


def test_a_bad_monitor_value_fails_before_anything_starts():
    with pytest.raises(ValueError, match="NER_MONITOR"):
        load_config({"NER_MONITOR": "maybe"})


def test_intervals_come_from_the_environment():
    config = load_config(
        {
            "NER_PROMETHEUS_SCRAPE_INTERVAL": "1s",
            "NER_PROMETHEUS_EVALUATION_INTERVAL": "500ms",
            "NER_PROMETHEUS_SD_REFRESH": "2m",
        }
    )
    assert (config.scrape_interval, config.evaluation_interval, config.sd_refresh) == ("1s", "500ms", "2m")


@pytest.mark.parametrize("value", ["1", "0s", "ten seconds", "1.5s"])
def test_a_bad_interval_fails_before_anything_starts(value):
    with pytest.raises(ValueError, match="NER_PROMETHEUS_SCRAPE_INTERVAL"):
        load_config({"NER_PROMETHEUS_SCRAPE_INTERVAL": value})


def test_free_ports_move_prometheus_and_mtail_off_their_defaults():
    config = on_free_ports(load_config({}))
    assert config.prometheus_port != 9090 and config.mtail_port != 3903
    assert config.prometheus_port != config.mtail_port
