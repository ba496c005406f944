"""`spanlake stats`: the JSON contract (keys other tools rely on), the table, time ranges
(--since / --start / --end), grouping flags, and clear errors; the same numbers as
``spanlake.query.trace_metrics`` on the same store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from store.factories import make_trace

from spanlake.exporter.cli import main
from spanlake.exporter.store import open_store
from spanlake.query import trace_metrics

DOC_KEYS = {
    "unit",
    "interval",
    "interval_ms",
    "group_by",
    "start_ms",
    "end_ms",
    "experiments",
    "filter",
    "rows",
}
ROW_KEYS = {
    "bucket_start_ms",
    "bucket_start",
    "group",
    "count",
    "error_count",
    "error_rate",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "total_tokens",
    "cost_usd",
}
HOUR_NS = 3600 * 10**9


@pytest.fixture(params=["sqlite", "parquet"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Ten traces in the last 5 hours (one every 30 min), three of them older than 2 days."""
    target = tmp_path / ("s.db" if request.param == "sqlite" else "lake")
    uri = f"{request.param}:///{target}"
    now = time.time_ns()
    spans = []
    for n in range(10):
        spans += make_trace(
            n,
            model="gpt-4o" if n % 2 else "claude-sonnet-4",
            status="ERROR" if n == 3 else "OK",
            tags={"env": "prod" if n < 6 else "dev"},
            start_ns=now - (n + 1) * HOUR_NS // 2,
        )
    for n in range(10, 13):
        spans += make_trace(n, model="gpt-4o", start_ns=now - 50 * HOUR_NS)
    with open_store(uri) as s:
        s.write_spans(spans)
    return uri


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stats", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_contract_and_same_numbers_as_the_api(
    store_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "--store", store_uri, "--group-by", "model", "--interval", "1h", "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == DOC_KEYS
    assert doc["unit"] == "trace" and doc["interval"] == "1h" and doc["interval_ms"] == 3_600_000
    assert doc["group_by"] == ["model"]
    assert doc["rows"] and all(set(r) == ROW_KEYS for r in doc["rows"])
    assert all(set(r["group"]) == {"model"} for r in doc["rows"])
    assert sum(r["count"] for r in doc["rows"]) == 13
    assert sum(r["error_count"] for r in doc["rows"]) == 1
    api = trace_metrics(group_by=["model"], interval="1h", store=store_uri)
    assert doc["rows"] == json.loads(json.dumps(api.rows))


def test_since_keeps_only_recent_traces(store_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--store", store_uri, "--since", "24h", "--format", "json")
    doc = json.loads(out)
    assert sum(r["count"] for r in doc["rows"]) == 10
    assert doc["start_ms"] is not None and doc["end_ms"] is None
    _, out, _ = run(
        capsys, "--store", store_uri, "--since", "2h", "--interval", "1d", "--format", "json"
    )
    assert sum(r["count"] for r in json.loads(out)["rows"]) == 3  # 30, 60, 90 minutes ago


def test_start_end_group_by_list_and_filter(
    store_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now_ms = time.time_ns() // 1_000_000
    start, end = now_ms - 3 * 3_600_000 - 60_000, now_ms - 3_600_000 + 60_000
    _, out, _ = run(
        capsys,
        "--store",
        store_uri,
        "--start",
        str(start),
        "--end",
        str(end),
        "--group-by",
        "model,tag.env",
        "--filter",
        "status = 'OK'",
        "--format",
        "json",
    )
    doc = json.loads(out)
    assert doc["group_by"] == ["model", "tag.env"]
    # traces 1..5 started 1h..3h ago; trace 3 failed
    assert sum(r["count"] for r in doc["rows"]) == 4
    assert {r["group"]["tag.env"] for r in doc["rows"]} == {"prod"}
    _, out, _ = run(
        capsys,
        "--store",
        store_uri,
        "--group-by",
        "span_type",
        "--group-by",
        "model",
        "--since",
        "24h",
        "--format",
        "json",
    )
    doc = json.loads(out)
    assert doc["unit"] == "span"
    types = {r["group"]["span_type"] for r in doc["rows"]}
    assert types == {"AGENT", "CHAT_MODEL", "TOOL"}


def test_table_output(store_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--store", store_uri, "--group-by", "model", "--interval", "1d")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["bucket", "(UTC)", "model", "traces", "errors", "err"]
    assert any("gpt-4o" in line for line in lines[2:])
    assert any("claude-sonnet-4" in line for line in lines[2:])
    _, out, _ = run(capsys, "--store", store_uri, "--experiment", "nope")
    assert out.strip() == "no traces in range"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", "colour"], "Invalid group_by 'colour'"),
        (["--interval", "fortnight"], "Invalid interval"),
        (["--since", "1h", "--start", "2h"], "--since or --start"),
        (["--filter", "nope = 1"], "unknown field 'nope'"),
        (["--start", "tomorrow"], "Invalid time"),
    ],
)
def test_bad_input_is_one_clear_line(
    store_uri: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--store", store_uri, *args)
    assert code == 2
    assert out == ""
    assert message in err and "Traceback" not in err
