"""GET /metrics: the counters after requests, and correct totals across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.unit.fake_backend import make_client

REPO_ROOT = Path(__file__).resolve().parents[2]


def scrape(client) -> str:
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/plain")
    return result.text


def test_metrics_count_requests_by_route_and_status():
    client = make_client()
    client.simulate_post("/v1/ner", json={"text": "北京"})
    client.simulate_post("/v1/ner", json={"text": ""})
    client.simulate_get("/nowhere")
    text = scrape(client)
    assert 'ner_http_requests_total{method="POST",route="/v1/ner",status="200"} 1.0' in text
    assert 'ner_http_requests_total{method="POST",route="/v1/ner",status="400"} 1.0' in text
    assert 'ner_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text


def test_metrics_count_texts_characters_and_batch_sizes():
    client = make_client()
    client.simulate_post("/v1/ner", json={"texts": ["北京", "张三在此"]})
    text = scrape(client)
    assert "ner_texts_total 2.0" in text
    assert "ner_characters_total 6.0" in text
    assert 'ner_batch_size_bucket{le="2.0"} 1.0' in text
    assert "ner_inference_seconds_count 1.0" in text


def test_metrics_expose_latency_and_in_flight():
    client = make_client()
    client.simulate_get("/health")
    text = scrape(client)
    assert 'ner_http_request_duration_seconds_count{route="/health"} 1.0' in text
    assert "ner_http_requests_in_flight 1.0" in text  # the scrape itself


def test_unknown_paths_share_one_label_value():
    client = make_client()
    for path in ("/a", "/b", "/c"):
        client.simulate_get(path)
    assert 'route="unmatched",status="404"} 3.0' in scrape(client)


def test_separate_apps_have_separate_counters():
    first, second = make_client(), make_client()
    first.simulate_post("/v1/ner", json={"text": "北京"})
    assert "ner_texts_total 0.0" in scrape(second)


_CHILD = textwrap.dedent("""
    import sys
    from tests.unit.fake_backend import make_client
    from pathlib import Path
    client = make_client(metrics_dir=Path(sys.argv[1]))
    if sys.argv[2] == "serve":
        client.simulate_post("/v1/ner", json={"texts": ["北京", "张三"]})
    else:
        print(client.simulate_get("/metrics").text)
""")


def test_metrics_are_summed_across_processes(tmp_path):
    """Under gunicorn each worker process writes its own files; any one of them reports the total."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def child(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), mode],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    child("serve")
    child("serve")
    text = child("scrape")
    assert 'ner_http_requests_total{method="POST",route="/v1/ner",status="200"} 2.0' in text
    assert "ner_texts_total 4.0" in text
