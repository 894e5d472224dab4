"""Locust users for the NER gateway: the original deployment's profile, uncached news, batches.

    .venv/bin/locust -f bench/locustfile.py --headless -u 8 -r 8 -t 25s \\
        --host http://127.0.0.1:8080 NewsUser

`bench/load.py` (`make load`) runs these with reports and a failure budget. Every answer
other than 2xx is a failure in Locust's own report, named by its status ("HTTP 429"), and
`--outcomes FILE` writes the answers counted by class (2xx, 429, 5xx, other, transport
error) so a runner can tell refusals from errors.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from locust import FastHttpUser, HttpUser, between, constant, constant_throughput, events, task

REPO_ROOT = Path(__file__).resolve().parents[1]

# The original web service's callers: a few short news sentences, one per request.
ORIGINAL_SENTENCES = (
    "新华社北京三月五日电，国务院总理在人民大会堂作政府工作报告。",
    "张三在北京的清华大学工作。",
    "联合国秘书长古特雷斯抵达上海访问。",
)
DEFAULT_BATCH_SIZE = 8
DEFAULT_USER_RATE = 1.0


@cache
def msra_test_sentences() -> list[str]:
    """The 5,000 MSRA test sentences in a fixed shuffled order (the project's checked fetch)."""
    from scripts.training import msra

    path = msra.fetch(say=lambda message: None)["test"]
    texts = [sentence.text for sentence in msra.read_sentences(path)]
    random.Random(0).shuffle(texts)
    return texts


class Sentences:
    """Hands out every sentence once; after a full pass a round number makes each text new again,
    so no worker's result cache ever answers for the model."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.served = 0

    def next(self) -> str:
        rounds, index = divmod(self.served, len(self.texts))
        self.served += 1
        text = self.texts[index]
        return text if rounds == 0 else f"{text}（{rounds}）"


@cache
def news() -> Sentences:
    """One sequence shared by all users of this Locust process (greenlets: no lock needed)."""
    return Sentences(msra_test_sentences())


# --------------------------------------------------------------------------- outcomes

OUTCOMES: Counter = Counter()
SLOW: Counter = Counter()  # answers slower than --slow-ms
CPU_WARNED: list[float] = []
ENVIRONMENT: list[Any] = []  # the one Environment of this process, once Locust made it


def outcome_class(status: int | None) -> str:
    """2xx, 429, 5xx, other (a 4xx the client caused) or transport (no HTTP answer at all)."""
    if not status:
        return "transport"
    if 200 <= status < 300:
        return "2xx"
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    return "other"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--outcomes", default="", help="write answers counted by class to this JSON file")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="texts per BatchUser request")
    parser.add_argument(
        "--user-rate", type=float, default=DEFAULT_USER_RATE, help="requests per second of each PacedNewsUser"
    )
    parser.add_argument(
        "--slow-ms", type=float, default=0.0, help="also count answers slower than this many ms (0: do not)"
    )


@events.init.add_listener
def _keep_environment(environment: Any, **_: Any) -> None:
    ENVIRONMENT.append(environment)


@events.spawning_complete.add_listener
def _reset_with_the_stats(**_: Any) -> None:
    """--reset-stats: count from the moment every user runs, as Locust's own figures do."""
    if ENVIRONMENT and ENVIRONMENT[0].reset_stats:
        OUTCOMES.clear()
        SLOW.clear()


@events.request.add_listener
def _count(response: Any = None, response_time: float = 0.0, **_: Any) -> None:
    OUTCOMES[outcome_class(getattr(response, "status_code", None))] += 1
    options = ENVIRONMENT[0].parsed_options if ENVIRONMENT else None
    slow_ms = getattr(options, "slow_ms", 0.0) if options else 0.0
    if slow_ms and response_time > slow_ms:
        SLOW["answers"] += 1


@events.cpu_warning.add_listener
def _cpu_warned(cpu_usage: float = 0.0, **_: Any) -> None:
    CPU_WARNED.append(cpu_usage)


@events.quitting.add_listener
def _write_outcomes(environment: Any, **_: Any) -> None:
    """The final figures: Locust's CSV is rewritten only once a second, so its last second is missing."""
    path = getattr(environment.parsed_options, "outcomes", "") if environment.parsed_options else ""
    if not path:
        return
    total = environment.stats.total
    percentile = (lambda q: total.get_response_time_percentile(q)) if total.num_requests else (lambda q: None)
    Path(path).write_text(
        json.dumps(
            {
                "outcomes": dict(OUTCOMES),
                "requests": total.num_requests,
                "failures": total.num_failures,
                "rps": total.total_rps,
                "p50_ms": percentile(0.5),
                "p95_ms": percentile(0.95),
                "p99_ms": percentile(0.99),
                "max_ms": total.max_response_time or None,
                "slow": SLOW["answers"],
                "cpu_warning": bool(CPU_WARNED),
            },
            indent=2,
        )
        + "\n"
    )


def post_checked(user: HttpUser | FastHttpUser, path: str, body: dict[str, Any], name: str) -> None:
    """POST body as JSON; anything but 2xx is a failure named by its status."""
    with user.client.post(path, json=body, name=name, catch_response=True) as response:
        if not 200 <= (response.status_code or 0) < 300:
            response.failure(
                f"HTTP {response.status_code}"
                if response.status_code
                else f"transport: {type(response.error).__name__}"
            )


# --------------------------------------------------------------------------- users


class OriginalProfileUser(HttpUser):
    """The original deployment's callers: think 1-3 s, then one short sentence to /predict."""

    wait_time = between(1, 3)

    @task
    def predict(self) -> None:
        post_checked(self, "/predict", {"text": random.choice(ORIGINAL_SENTENCES)}, "/predict")


class NewsUser(FastHttpUser):
    """Closed loop without think time: each request the next, never repeated, MSRA test sentence."""

    wait_time = constant(0)

    @task
    def ner(self) -> None:
        post_checked(self, "/v1/ner", {"text": news().next()}, "/v1/ner text")


class BatchUser(FastHttpUser):
    """Closed loop of batches (`texts`, --batch-size of them) of never repeated MSRA sentences."""

    wait_time = constant(0)

    @task
    def ner_batch(self) -> None:
        size = getattr(self.environment.parsed_options, "batch_size", DEFAULT_BATCH_SIZE)
        post_checked(self, "/v1/ner", {"texts": [news().next() for _ in range(size)]}, "/v1/ner texts")


class PacedNewsUser(NewsUser):
    """Open loop: each user sends --user-rate requests/s whatever the answers take (while they take
    less than 1/rate), so users x rate is the offered load; never repeated MSRA sentences."""

    def wait_time(self) -> float:
        if not hasattr(self, "_pacing"):
            self._pacing = constant_throughput(getattr(self.environment.parsed_options, "user_rate", DEFAULT_USER_RATE))
        return self._pacing(self)
