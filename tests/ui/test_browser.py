"""The viewer page in headless Chromium (Debian's ``chromium`` driven by Playwright):
what a user sees in the list, search, a trace's tree/detail/chat, and that trace content
cannot run script. Skipped, saying why, when Playwright or the browser is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import PROD_TRACES, WEATHER_TRACE, XSS, XSS_TRACE, Served

#: CI sets this so that a missing browser fails the run instead of skipping silently.
_REQUIRED = os.environ.get("SPANLAKE_REQUIRE_BROWSER") == "1"
_MISSING_BROWSER = (
    "browser tests need Chromium (`apt-get install -y chromium`) at /usr/bin/chromium "
    "or $SPANLAKE_CHROMIUM"
)
if _REQUIRED:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need `pip install playwright`"
    )
CHROMIUM = os.environ.get("SPANLAKE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    if _REQUIRED:
        raise RuntimeError(_MISSING_BROWSER)
    pytest.skip(_MISSING_BROWSER, allow_module_level=True)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
ALL_TRACES = 8
EXPECTED_HTTP_ERROR = "Failed to load resource: the server responded with a status of 4"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, ui_server: Served) -> Iterator[Any]:
    """A fresh page on the viewer; fails the test on any script error or dialog."""
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    # An API answering 400/404 (bad filter, unknown trace) is logged by Chromium as a failed
    # load: expected there; anything else at error level is a bug in the page.
    opened.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith(EXPECTED_HTTP_ERROR)
            else None
        ),
    )
    opened.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    opened.goto(ui_server.url)
    yield opened
    context.close()
    assert errors == []


def rows(page: Any) -> Any:
    return page.locator("#trace-list tbody tr")


def wait_rows(page: Any, count: int) -> None:
    sync_api.expect(rows(page)).to_have_count(count)


def test_list_shows_every_trace(page: Any, ui_server: Served) -> None:
    wait_rows(page, ALL_TRACES)
    weather = page.locator(f'tr[data-trace-id="{WEATHER_TRACE}"]')
    sync_api.expect(weather.locator(".trace-name")).to_have_text("weather_agent")
    sync_api.expect(weather.locator(".tokens")).to_have_text("362")
    sync_api.expect(weather.locator(".state")).to_have_text("OK")
    sync_api.expect(weather.locator(".tags")).to_contain_text("team=geo")
    sync_api.expect(page.locator(".state-ERROR").first).to_have_text("ERROR")
    sync_api.expect(weather.locator(".request")).to_contain_text("Weather in Paris?")
    expected_cost = ui_server.store.get_trace("00000000000000000000000000000001").info.cost_usd
    assert expected_cost is not None
    sync_api.expect(
        page.locator('tr[data-trace-id="00000000000000000000000000000001"] .cost')
    ).to_have_text(f"${expected_cost:.6f}")


def test_search_narrows_the_list(page: Any) -> None:
    wait_rows(page, ALL_TRACES)
    page.fill("#search", "tags.env = 'prod'")
    page.press("#search", "Enter")
    wait_rows(page, 3)
    shown = {rows(page).nth(i).get_attribute("data-trace-id") for i in range(3)}
    assert shown == PROD_TRACES
    page.select_option("#experiment", "weather")
    wait_rows(page, 0)
    sync_api.expect(page.locator("#list-empty")).to_be_visible()
    page.fill("#search", "")
    page.click("#search-button")
    wait_rows(page, 2)


def test_bad_filter_shows_the_filter_error(page: Any) -> None:
    wait_rows(page, ALL_TRACES)
    page.fill("#search", "bogus = 1")
    page.press("#search", "Enter")
    sync_api.expect(page.locator("#error")).to_contain_text("unknown field 'bogus'")
    wait_rows(page, 0)
    page.fill("#search", "name = 'weather_agent'")
    page.press("#search", "Enter")
    wait_rows(page, 1)
    sync_api.expect(page.locator("#error")).to_be_hidden()


def test_trace_detail_tree_span_and_chat(page: Any) -> None:
    page.click(f'tr[data-trace-id="{WEATHER_TRACE}"]')
    sync_api.expect(page.locator("#trace-title")).to_have_text("weather_agent")
    sync_api.expect(page.locator("#trace-tokens")).to_contain_text("362 (in 320 / out 42)")
    sync_api.expect(page.locator("#trace-tags")).to_contain_text("team=geo")
    sync_api.expect(page.locator("#trace-metadata")).to_contain_text("user=u-7")
    sync_api.expect(page.locator("#assessments")).to_contain_text("helpful")
    tree = page.locator("#span-tree .span-row")
    sync_api.expect(tree).to_have_count(4)
    sync_api.expect(tree.locator(".span-name")).to_have_text(
        ["weather_agent", "chat gpt-4o", "get_weather", "chat gpt-4o"]
    )
    # Timeline: the tool span starts 42% into the trace and lasts 8% of it.
    bar = tree.nth(2).locator(".bar")
    assert bar.evaluate("b => [b.style.left, b.style.width]") == ["42%", "8%"]

    tree.nth(1).click()  # the first LLM call: asks for the tool
    sync_api.expect(page.locator("#span-type")).to_have_text("CHAT_MODEL")
    sync_api.expect(page.locator("#span-model")).to_have_text("gpt-4o")
    sync_api.expect(page.locator("#span-tokens")).to_contain_text("150 (in 120 / out 30)")
    chat = page.locator("#chat .chat-message")
    sync_api.expect(chat.locator(".role")).to_contain_text(["system", "user", "assistant"])
    call = page.locator("#chat .tool-call")
    sync_api.expect(call.locator(".tool-name")).to_have_text("get_weather")
    sync_api.expect(call).to_contain_text("call_1")
    sync_api.expect(call.locator("pre")).to_contain_text('"city": "Paris"')
    sync_api.expect(page.locator("#span-events")).to_contain_text("gen_ai.choice")

    tree.nth(3).click()  # the second call: the tool result goes back in
    sync_api.expect(page.locator("#chat .tool-response")).to_contain_text("sunny, 21C")
    sync_api.expect(page.locator("#chat .chat-message").last).to_contain_text(
        "It is sunny in Paris."
    )

    tree.nth(2).click()  # the tool span: inputs/outputs as pretty JSON
    sync_api.expect(page.locator("#span-type")).to_have_text("TOOL")
    sync_api.expect(page.locator("#span-inputs")).to_contain_text('"city": "Paris"')
    sync_api.expect(page.locator("#chat")).to_have_count(0)

    page.click("#back")
    wait_rows(page, ALL_TRACES)


def test_exporter_written_llm_span_shows_its_chat(page: Any) -> None:
    """Through the real exporter the messages arrive as the span's inputs/outputs."""
    page.locator(
        "#trace-list tbody tr", has=page.locator(".trace-name", has_text="otel_agent")
    ).click()
    sync_api.expect(page.locator("#trace-tokens")).to_contain_text("15 (in 11 / out 4)")
    # A trace without assessments shows no assessment block and no stray "null".
    assert page.locator("#assessments").count() == 0
    assert "null" not in page.locator("#trace-summary").inner_text()
    page.locator("#span-tree .span-row", has_text="chat gpt-4o-mini").click()
    sync_api.expect(page.locator("#span-model")).to_have_text("gpt-4o-mini")
    sync_api.expect(page.locator("#span-tokens")).to_contain_text("15 (in 11 / out 4)")
    sync_api.expect(page.locator("#chat .chat-text")).to_have_text("Where is #42?")
    sync_api.expect(page.locator("#chat .tool-call .tool-name")).to_have_text("lookup_order")
    sync_api.expect(page.locator("#chat .tool-call pre")).to_contain_text('"order_id": 42')


def test_trace_link_opens_directly_and_unknown_trace_says_so(page: Any, ui_server: Served) -> None:
    page.goto(f"{ui_server.url}#trace/{WEATHER_TRACE}")
    sync_api.expect(page.locator("#trace-title")).to_have_text("weather_agent")
    page.goto(f"{ui_server.url}#trace/{'0' * 32}")
    sync_api.expect(page.locator("#error")).to_contain_text("not found")


def test_trace_content_is_shown_as_text_never_run(page: Any) -> None:
    """Names, tags, messages, attributes and events holding <script>/<img onerror> markup
    appear literally and execute nothing."""
    row = page.locator(f'tr[data-trace-id="{XSS_TRACE}"]')
    sync_api.expect(row.locator(".trace-name")).to_have_text(XSS)
    sync_api.expect(row.locator(".request")).to_contain_text(XSS)
    row.click()
    sync_api.expect(page.locator("#trace-title")).to_have_text(XSS)
    sync_api.expect(page.locator("#span-model")).to_have_text(XSS)
    sync_api.expect(page.locator("#span-status")).to_contain_text(XSS)
    sync_api.expect(page.locator("#chat .chat-text").first).to_have_text(XSS)
    sync_api.expect(page.locator("#chat .tool-name")).to_have_text(XSS)
    sync_api.expect(page.locator("#span-attributes")).to_contain_text(XSS)
    sync_api.expect(page.locator("#span-events")).to_contain_text(XSS)
    sync_api.expect(page.locator("#trace-tags")).to_contain_text(XSS)
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img").count() == 0
    assert page.evaluate("() => document.scripts.length") == 4  # app, trace, charts, overview
