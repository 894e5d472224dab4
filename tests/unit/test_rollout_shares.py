"""The rollout's arithmetic: shares that never pass 100 %, and per-version counters from worker metrics."""

from __future__ import annotations

import pytest

from registrar.kv import RolloutError, RolloutStore, format_share, parse_share
from registrar.rollout import _fix_rounding
from registrar.versions import Counters, parse_counters

METRICS = """\
# TYPE ner_http_requests counter
ner_http_requests_total{method="POST",route="/v1/ner",status="200"} 90.0
ner_http_requests_total{method="POST",route="/v1/ner",status="503"} 10.0
ner_http_requests_total{method="GET",route="/health",status="500"} 7.0
# TYPE ner_http_request_duration_seconds histogram
ner_http_request_duration_seconds_bucket{le="0.01",route="/v1/ner"} 50.0
ner_http_request_duration_seconds_bucket{le="0.1",route="/v1/ner"} 100.0
ner_http_request_duration_seconds_bucket{le="+Inf",route="/v1/ner"} 100.0
"""


def test_shares_over_100_percent_are_refused_before_anything_is_written():
    with pytest.raises(RolloutError, match="more than 100"):
        RolloutStore(client=None).set_shares({"a@1": 60.0, "b@2": 50.0})


def test_a_share_outside_0_to_100_is_refused():
    with pytest.raises(RolloutError):
        parse_share("101")


def test_shares_are_written_as_split_clients_reads_them():
    assert [format_share(v) for v in (10.0, 12.5, 33.33)] == ["10", "12.5", "33.33"]


def test_rounding_is_moved_onto_one_version_so_the_shares_add_up_to_100():
    shares = {"a@1": 33.33, "b@2": 33.33, "c@3": 33.33}
    _fix_rounding(shares, keep="c@3")
    assert round(sum(shares.values()), 2) == 100.0 and shares["c@3"] == 33.33


def test_only_the_api_routes_count_and_5xx_are_errors():
    counters = parse_counters(METRICS)
    assert (counters.requests, counters.errors) == (100.0, 10.0)


def test_p95_is_interpolated_inside_its_bucket_like_histogram_quantile():
    assert parse_counters(METRICS).quantile(0.95) == pytest.approx(0.01 + 0.09 * 0.9)


def test_counters_since_a_baseline_are_the_difference():
    later = Counters(30.0, 3.0, {1.0: 30.0})
    assert later.since(Counters(10.0, 1.0, {1.0: 10.0})) == Counters(20.0, 2.0, {1.0: 20.0})
