"""The web page at / as a user drives it in a real browser, through the gateway of a real cluster."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
import requests

from scripts.localcluster import LocalCluster
from scripts.monitoring.chromium import chromium_installed, headless_chromium
from tests.conftest import ARTIFACTS
from tests.support.waiting import wait_for

SCREENSHOT = ARTIFACTS / "web-page.png"
# The default model has random weights: the test uses the first text it finds entities in.
CANDIDATES = [
    "张三在北京的清华大学读书，毕业后加入了阿里巴巴集团，常驻杭州。",
    "新华社北京电，国务院总理李强在人民大会堂会见了联合国秘书长古特雷斯。",
    "李四和王五从上海坐高铁去了广州，参观了中山大学和广东省博物馆。",
]

pytestmark = pytest.mark.skipif(
    not chromium_installed(),
    reason="needs the Debian packages chromium and chromium-driver (scripts/setup.sh installs them)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator["object"]:
    """Headless Chromium with a throw-away profile, no network beyond the test cluster."""
    # The performance log carries the response headers the page received (CDP Network events).
    with headless_chromium(1200, 1500, {"goog:loggingPrefs": {"performance": "ALL"}}) as driver:
        driver.set_page_load_timeout(30)
        yield driver


@pytest.fixture
def page(browser, two_workers: LocalCluster):
    """The page freshly loaded from the gateway, with the text limit it reads from /openapi.json."""
    browser.get(f"{two_workers.config.gateway_url}/")
    wait_for(lambda: "/" in browser.find_element("id", "counter").text, 30, "the text limit to load")
    browser.get_log("performance")  # drop the page load's own events
    return browser


def submit(driver, text: str, typed: bool = True) -> None:
    """Enter the text (typed key by key, or pasted in one go for long texts) and press Analyse."""
    box = driver.find_element("id", "text")
    box.clear()
    if typed:
        box.send_keys(text)
    else:
        driver.execute_script(
            "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('input'));", box, text
        )
    driver.find_element("id", "submit").click()
    wait_for(
        lambda: driver.find_element("id", "result").is_displayed() or driver.find_element("id", "error").is_displayed(),
        30,
        "a result or an error",
    )


def api_entities(gateway: str, text: str) -> list[dict]:
    response = requests.post(f"{gateway}/v1/ner", json={"text": text}, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()["entities"]


def text_with_entities(gateway: str) -> tuple[str, list[dict]]:
    for text in CANDIDATES:
        entities = api_entities(gateway, text)
        if entities:
            return text, entities
    pytest.fail(f"the model found no entity in any of {CANDIDATES}")


def highlighted(driver) -> list[dict]:
    """The marks in the highlighted text, read back as entities."""
    return [
        {
            "type": mark.get_attribute("data-type"),
            "start": int(mark.get_attribute("data-start")),
            "end": int(mark.get_attribute("data-end")),
            "span": mark.text,
        }
        for mark in driver.find_elements("css selector", "#highlighted mark")
    ]


def listed(driver) -> list[dict]:
    rows = driver.find_elements("css selector", "#entities tr")
    cells = [[td.text for td in row.find_elements("tag name", "td")] for row in rows]
    return [{"type": c[1], "span": c[2], "start": int(c[3]), "end": int(c[4])} for c in cells]


def response_headers(driver, path: str) -> dict[str, str]:
    """Headers of the last response to path the page received, from Chromium's network events."""
    found: dict[str, str] | None = None
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if response["url"].endswith(path):
                found = {name.lower(): value for name, value in response["headers"].items()}
    assert found is not None, f"no response to {path} in the browser's network log"
    return found


def error_text(driver) -> str:
    return driver.find_element("id", "error").text


def test_highlighted_spans_and_the_entity_list_match_the_api_for_the_same_text(page, two_workers):
    text, expected = text_with_entities(two_workers.config.gateway_url)
    submit(page, text)
    assert page.find_element("id", "result").is_displayed(), error_text(page)
    assert highlighted(page) == expected
    assert listed(page) == expected
    assert page.find_element("id", "count").text == str(len(expected))
    for kind in ("PER", "LOC", "ORG"):
        count = page.find_element("id", f"count-{kind}").text
        assert count == str(sum(e["type"] == kind for e in expected))
    # Copying the highlighted text gives back exactly the text: type labels are not in it.
    assert page.find_element("id", "highlighted").text == text
    ARTIFACTS.mkdir(exist_ok=True)
    page.save_screenshot(str(SCREENSHOT))


def test_the_worker_shown_is_the_one_named_in_the_x_worker_id_header(page, two_workers):
    submit(page, CANDIDATES[0])
    headers = response_headers(page, "/v1/ner")
    shown = page.find_element("id", "worker").text
    assert shown == headers["x-worker-id"]
    assert shown in {service["ID"] for service in two_workers.passing()}
    assert page.find_element("id", "request").text == headers["x-request-id"]


def test_a_text_over_the_limit_shows_the_413_message_from_the_worker(page, two_workers):
    limit = int(page.find_element("id", "counter").text.split("/")[1].split()[0])
    submit(page, "北" * (limit + 1), typed=False)
    assert "over the limit" in page.find_element("id", "counter").text
    message = error_text(page)
    assert "The text is too long (413)" in message
    assert f"the limit is {limit}" in message
    assert not page.find_element("id", "result").is_displayed()


def test_with_no_worker_the_page_shows_the_503_message_from_the_gateway(page, two_workers):
    url = f"{two_workers.config.gateway_url}/v1/ner"
    two_workers.scale(0)
    try:
        wait_for(
            lambda: requests.post(url, json={"text": "北京"}, timeout=5).status_code == 503,
            10,
            "the gateway to answer 503",
        )
        submit(page, CANDIDATES[0])
        message = error_text(page)
        assert "No worker is available right now (503)" in message
        assert "no healthy worker is available" in message
        assert "answered by the gateway" in message
        assert not page.find_element("id", "result").is_displayed()
    finally:
        two_workers.scale(2)
        two_workers.wait_gateway_serving()
