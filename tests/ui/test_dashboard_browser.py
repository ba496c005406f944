"""The overview dashboards and the trace view in headless Chromium: every chart draws the
numbers `spanlake stats` prints for the same range, a click on a bucket opens its traces,
the range picker, the span tree (time axis, collapse, span-type colours, errors, OK for
unset status), folded stream events, stack traces as text, "show all" for long messages,
and the list at 1366 px. Screenshots go to $SPANLAKE_SCREENSHOT_DIR when set (docs/)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from store.factories import BASE_NS, make_trace

from spanlake.exporter.cli import main
from spanlake.exporter.records import SpanEvent, SpanRecord, TokenUsage
from spanlake.exporter.store import open_store

from .conftest import WEATHER_TRACE, Served, weather_spans
from .test_browser import ARGS, CHROMIUM, EXPECTED_HTTP_ERROR, TIMEOUT_MS, sync_api

RICH_TRACE = "d" * 32
MIN_NS = 60 * 10**9
MS = 1_000_000
HOUR_MS = 3_600_000
#: The seeded traces' span: 6 hours from the first whole hour after BASE_NS.
START_MS = (BASE_NS // MS // HOUR_MS + 1) * HOUR_MS
END_MS = START_MS + 6 * HOUR_MS
STACK = (
    "Traceback (most recent call last):\n"
    '  File "shop/tools.py", line 42, in lookup_order\n'
    "    raise TimeoutError('inventory service timed out')\n"
    "TimeoutError: inventory service timed out"
)
LONG_ANSWER = "Here is everything about your order. " + "Line of detail. " * 900


def shop_spans() -> list[SpanRecord]:
    """60 traces over 6 hours, one model each (gpt-4o / claude-sonnet-4), some failing."""
    spans: list[SpanRecord] = []
    for n in range(60):
        spans += make_trace(
            n,
            experiment="shop",
            llm_calls=1 + n % 2,
            model="gpt-4o" if n % 3 else "claude-sonnet-4",
            status="ERROR" if n % 9 == 4 else "OK",
            tokens=300 + 41 * n,
            duration_ms=400 + (n * 397) % 6000,
            tags={"env": "prod"},
            metadata={"user": f"user-{n % 4}"},
            start_ns=START_MS * MS + n * 6 * MIN_NS + (n % 5) * 10**9,
        )
    return spans


def rich_spans() -> list[SpanRecord]:
    """One agent trace with a plan step, a streamed LLM call (40 chunk events and a long
    answer), a failing tool with a Python stack trace, and a retriever under the tool."""
    t0 = START_MS * MS + 30 * MIN_NS

    def span(
        i: int, parent: int | None, name: str, kind: str, start: int, end: int, **kw: Any
    ) -> SpanRecord:
        return SpanRecord(
            trace_id=RICH_TRACE,
            span_id=f"{i:016x}",
            parent_span_id=f"{parent:016x}" if parent else None,
            experiment="shop",
            name=name,
            span_type=kind,
            kind="INTERNAL",
            start_time_ns=t0 + start * MS,
            end_time_ns=t0 + end * MS,
            status=kw.pop("status", "UNSET"),
            resource={"service.name": "shop-bot"},
            **kw,
        )

    chunks = [
        SpanEvent("spanlake.stream.chunk", t0 + (120 + 10 * k) * MS, {"content": f"word{k} "})
        for k in range(40)
    ]
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Where is order 42?"}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": LONG_ANSWER}]}]
    return [
        span(
            1,
            None,
            "shop_agent",
            "AGENT",
            0,
            1500,
            inputs='{"question": "Where is order 42?"}',
            outputs=orjson.dumps(LONG_ANSWER[:200]).decode(),
            trace_tags={"env": "prod"},
        ),
        span(2, 1, "plan", "CHAIN", 10, 90),
        span(
            3,
            1,
            "chat gpt-4o",
            "CHAT_MODEL",
            100,
            600,
            status="OK",
            model="gpt-4o",
            provider="openai",
            token_usage=TokenUsage(800, 300, 1100),
            events=chunks,
            attributes={
                "gen_ai.input.messages": orjson.dumps(messages).decode(),
                "gen_ai.output.messages": orjson.dumps(answer).decode(),
            },
        ),
        span(
            4,
            1,
            "lookup_order",
            "TOOL",
            650,
            1400,
            status="ERROR",
            status_message="TimeoutError: inventory service timed out",
            events=[
                SpanEvent(
                    "exception",
                    t0 + 1390 * MS,
                    {
                        "exception.type": "TimeoutError",
                        "exception.message": "inventory service timed out",
                        "exception.stacktrace": STACK,
                    },
                )
            ],
        ),
        span(5, 4, "search_inventory", "RETRIEVER", 700, 1300),
    ]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from spanlake.exporter.ui import make_server

    uri = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'dash.db'}"
    store = open_store(uri)
    store.write_spans(shop_spans() + rich_spans() + weather_spans())
    server = make_server(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(server.url, store, server)
    server.shutdown()
    server.server_close()
    thread.join(5)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, dash: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    opened.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith(EXPECTED_HTTP_ERROR)
            else None
        ),
    )
    yield opened
    context.close()
    assert errors == []


def stats(capsys: pytest.CaptureFixture[str], served: Served, *args: str) -> Any:
    code = main(
        [
            "stats",
            "--store",
            served.store.uri,
            "--experiment",
            "shop",
            "--format",
            "json",
            "--start",
            str(START_MS),
            "--end",
            str(END_MS),
            "--interval",
            "1h",
            *args,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def open_overview(page: Any, served: Served) -> None:
    page.goto(f"{served.url}#overview?range=custom&start={START_MS}&end={END_MS}&interval=1h")
    page.select_option("#experiment", "shop")
    sync_api.expect(page.locator("#chart-traces .mark").first).to_be_visible()


def marks(page: Any, chart: str) -> dict[tuple[int, str], float]:
    values = page.eval_on_selector_all(
        f"#{chart} .mark",
        "ms => ms.map(m => [m.dataset.bucket, m.dataset.series, m.dataset.value])",
    )
    return {(int(b), s): float(v) for b, s, v in values}


def test_every_chart_draws_what_spanlake_stats_prints(
    page: Any, dash: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    open_overview(page, dash)
    total = stats(capsys, dash)["rows"]
    by_model = stats(capsys, dash, "--group-by", "model")["rows"]
    assert len(total) == 6 and len(by_model) == 12
    charts = page.eval_on_selector_all(".chart", "cs => cs.map(c => c.id)")
    assert charts == [
        "chart-traces",
        "chart-error-rate",
        "chart-latency",
        "chart-tokens",
        "chart-cost",
        "chart-model-traces",
        "chart-model-errors",
        "chart-model-latency",
        "chart-model-tokens",
        "chart-model-cost",
    ]
    for chart in charts:
        assert marks(page, chart), f"{chart} drew nothing"

    def expect(chart: str, rows: list[dict[str, Any]], series: dict[str, Any]) -> None:
        """Every stats value is drawn (bars: the non-zero ones; lines: every non-null one);
        anything else drawn is a zero (a model's empty bucket on a count line)."""
        bars = page.get_attribute(f"#{chart}", "data-kind") != "line"
        want = {}
        for r in rows:
            for name, value_of in series.items():
                value = value_of(r)
                if value is not None and (value or not bars):
                    key = r["group"]["model"] if name == "model" else name
                    want[(r["bucket_start_ms"], key)] = value
        got = marks(page, chart)
        assert want, chart
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (chart, key)
        assert all(got[k] == 0 for k in got.keys() - want.keys()), chart

    expect(
        "chart-traces",
        total,
        {"ok": lambda r: r["count"] - r["error_count"], "errors": lambda r: r["error_count"]},
    )
    expect("chart-error-rate", total, {"error_rate": lambda r: r["error_rate"]})
    expect(
        "chart-latency",
        total,
        {f"latency_{p}_ms": (lambda r, p=p: r[f"latency_{p}_ms"]) for p in ("p50", "p90", "p99")},
    )
    expect(
        "chart-tokens",
        total,
        {
            "input_tokens": lambda r: r["input_tokens"],
            "output_tokens": lambda r: r["output_tokens"],
        },
    )
    expect("chart-cost", total, {"cost_usd": lambda r: r["cost_usd"]})
    expect("chart-model-traces", by_model, {"model": lambda r: r["count"]})
    expect("chart-model-errors", by_model, {"model": lambda r: r["error_rate"]})
    expect("chart-model-latency", by_model, {"model": lambda r: r["latency_p90_ms"]})
    expect("chart-model-tokens", by_model, {"model": lambda r: r["total_tokens"]})
    expect("chart-model-cost", by_model, {"model": lambda r: r["cost_usd"]})
    whole = sum(r["count"] for r in total)
    sync_api.expect(page.locator("#tile-traces .tile-value")).to_have_text(str(whole))


def test_a_click_on_a_bucket_opens_its_traces(
    page: Any, dash: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    open_overview(page, dash)
    rows = stats(capsys, dash, "--group-by", "model")["rows"]
    target = next(r for r in rows if r["group"]["model"] == "claude-sonnet-4")
    bucket = target["bucket_start_ms"]
    page.locator(
        f'#chart-model-traces .mark[data-bucket="{bucket}"][data-series="claude-sonnet-4"]'
    ).click()
    sync_api.expect(page.locator("#list-view")).to_be_visible()
    sync_api.expect(page.locator("#trace-list tbody tr")).to_have_count(target["count"])
    text = page.input_value("#search")
    assert f"timestamp_ms >= {bucket}" in text and "model = 'claude-sonnet-4'" in text
    models = page.eval_on_selector_all(
        "#trace-list tbody tr", "rs => rs.map(r => r.dataset.traceId)"
    )
    for trace_id in models:
        info = dash.store.get_trace(trace_id).info
        assert "claude-sonnet-4" in info.models
        assert bucket <= info.request_time_ms < bucket + HOUR_MS


def test_range_picker(page: Any, dash: Served) -> None:
    open_overview(page, dash)
    assert len(marks(page, "chart-traces")) >= 6
    page.select_option("#interval", "3h")
    sync_api.expect(page.locator("#overview-range")).to_contain_text(
        "3 buckets of 3h"
    )  # 21-24, 0-3, 3-6 h
    page.select_option("#range", "1h")  # the seeded traces are from 2023
    sync_api.expect(page.locator("#overview-empty")).to_be_visible()
    sync_api.expect(page.locator("#tile-traces .tile-value")).to_have_text("0")
    page.select_option("#range", "custom")
    page.fill("#range-start", "2023-11-14T23:00")
    page.fill("#range-end", "2023-11-15T01:00")
    page.click("#range-apply")
    sync_api.expect(page.locator("#overview-range")).to_contain_text("2023-11-14 23:00 UTC")
    assert "range=custom" in page.evaluate("() => location.hash")
    page.select_option("#range", "all")
    sync_api.expect(page.locator("#chart-traces .mark").first).to_be_visible()


def test_span_tree_axis_colours_collapse_errors_and_status(page: Any, dash: Served) -> None:
    page.goto(f"{dash.url}#trace/{RICH_TRACE}")
    rows = page.locator("#span-tree .span-row")
    sync_api.expect(rows).to_have_count(5)
    ticks = page.locator("#time-axis .axis-tick")
    sync_api.expect(ticks).to_have_text(["0", "375 ms", "750 ms", "1.13 s", "1.50 s"])
    sync_api.expect(rows.nth(2).locator(".span-offset")).to_have_text("+100 ms")
    colours = page.eval_on_selector_all(
        "#span-tree .bar", "bs => bs.map(b => getComputedStyle(b).backgroundColor)"
    )
    assert len(set(colours)) == 5  # AGENT, CHAIN, CHAT_MODEL, TOOL, RETRIEVER
    failing = rows.nth(3)
    sync_api.expect(failing.locator(".error-mark")).to_be_visible()
    sync_api.expect(rows.nth(0).locator(".error-mark")).to_have_count(0)
    # the root span's status is UNSET: shown as OK
    sync_api.expect(page.locator("#span-status")).to_have_text("OK")
    failing.click()
    sync_api.expect(page.locator("#span-status")).to_have_text(
        "ERROR: TimeoutError: inventory service timed out"
    )
    rows.nth(0).locator(".toggle").click()
    sync_api.expect(page.locator("#span-tree .span-row:visible")).to_have_count(1)
    sync_api.expect(rows.nth(0).locator(".hidden-errors")).to_be_visible()
    rows.nth(0).locator(".toggle").click()
    sync_api.expect(page.locator("#span-tree .span-row:visible")).to_have_count(5)
    failing.locator(".toggle").click()  # the tool's retriever child folds away
    sync_api.expect(page.locator("#span-tree .span-row:visible")).to_have_count(4)
    sync_api.expect(rows.nth(0).locator(".hidden-errors")).to_be_hidden()


def test_stream_events_fold_and_stack_traces_read_as_text(page: Any, dash: Served) -> None:
    page.goto(f"{dash.url}#trace/{RICH_TRACE}")
    rows = page.locator("#span-tree .span-row")
    rows.nth(2).click()  # the streamed LLM call
    run = page.locator("#span-events .event-run")
    sync_api.expect(run).to_have_count(1)
    sync_api.expect(run).to_contain_text("spanlake.stream.chunk \u00d7 40")
    sync_api.expect(run.locator(".event-text")).to_contain_text("word0 word1 word2")
    sync_api.expect(run.locator(".event-run-items")).to_be_hidden()
    run.locator(".show-all").first.click()
    sync_api.expect(run.locator(".event-run-items .event")).to_have_count(40)
    rows.nth(3).click()  # the failing tool
    trace_text = page.locator("#span-events .stacktrace").inner_text()
    assert trace_text == STACK  # real line breaks, not escaped "\n"
    assert "\\n" not in trace_text
    sync_api.expect(page.locator("#span-events .exception-title")).to_have_text(
        "TimeoutError: inventory service timed out"
    )


def test_long_message_is_collapsed_with_show_all(page: Any, dash: Served) -> None:
    page.goto(f"{dash.url}#trace/{RICH_TRACE}")
    page.locator("#span-tree .span-row").nth(2).click()
    answer = page.locator("#chat .long-text").last
    text = answer.locator(".chat-text")
    assert len(text.inner_text()) < 1000
    answer.locator(".show-all").click()
    sync_api.expect(answer.locator(".show-all")).to_have_text("show less")
    assert text.inner_text() == LONG_ANSWER


def test_list_has_an_experiment_column_and_fits_1366px(page: Any, dash: Served) -> None:
    page.goto(dash.url)
    sync_api.expect(page.locator("#trace-list tbody tr")).to_have_count(50)
    headers = page.locator("#trace-list thead th")
    sync_api.expect(headers).to_contain_text(["Time (UTC)", "Experiment", "Trace"])
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    page.select_option("#order", "request_time_ms ASC")  # the weather trace is the oldest
    sync_api.expect(page.locator("#trace-list td.experiment").first).to_have_text("weather")
    cells = page.eval_on_selector_all(
        "#trace-list td.experiment", "ts => ts.map(t => t.textContent)"
    )
    assert set(cells) == {"shop", "weather"}
    page.select_option("#experiment", "shop")
    sync_api.expect(page.locator("#trace-list thead th", has_text="Experiment")).to_have_count(0)
    sync_api.expect(page.locator("#trace-list td.experiment")).to_have_count(0)


def test_screenshots(page: Any, dash: Served, tmp_path: Path) -> None:
    """Overview, a trace and a chat view, as a user sees them at 1366 px."""
    out = Path(os.environ.get("SPANLAKE_SCREENSHOT_DIR") or tmp_path)
    open_overview(page, dash)
    shots = {"ui-overview.png": None}
    page.screenshot(path=str(out / "ui-overview.png"), full_page=True)
    page.goto(f"{dash.url}#trace/{RICH_TRACE}")
    page.locator("#span-tree .span-row").nth(3).click()
    sync_api.expect(page.locator("#span-events .stacktrace")).to_be_visible()
    page.screenshot(path=str(out / "ui-trace.png"))
    page.goto(f"{dash.url}#trace/{WEATHER_TRACE}")
    page.locator("#span-tree .span-row").nth(3).click()
    sync_api.expect(page.locator("#chat .tool-response")).to_be_visible()
    page.screenshot(path=str(out / "ui-chat.png"))
    shots.update({"ui-trace.png": None, "ui-chat.png": None})
    for name in shots:
        assert (out / name).stat().st_size > 10_000
