"""A short Locust run through the real gateway: the load tooling works and the cluster serves it cleanly."""

from __future__ import annotations

from bench.load import LocustRun


def access_log_lines(cluster) -> int:
    path = cluster.nginx_dir() / "access.log"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_a_short_locust_run_through_the_gateway_is_answered_2xx_every_time(two_workers, tmp_path):
    logged_before = access_log_lines(two_workers)

    result = LocustRun(
        two_workers.config.gateway_url, "news", users=4, duration="8s", name="smoke", artifacts=tmp_path
    ).run()

    assert result.requests >= 50, result.log_tail
    assert result.outcomes == {"2xx": result.requests}, (result.outcomes, result.log_tail)
    assert {p.name for p in result.reports} >= {"smoke_stats.csv", "smoke_failures.csv", "smoke.html"}
    assert (tmp_path / "smoke.html").stat().st_size > 10_000
    # Every answer came through nginx, not from anything else listening on that port.
    assert access_log_lines(two_workers) - logged_before >= result.requests
