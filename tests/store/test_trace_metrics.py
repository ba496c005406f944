"""``Store.trace_metrics`` on every store: the numbers equal a plain-Python reference built
from what ``search_traces`` / ``get_trace`` return, and the three stores agree exactly."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from spanlake.exporter.errors import FilterError
from spanlake.exporter.pricing import price_for
from spanlake.exporter.records import TraceInfo
from spanlake.exporter.store import Store, open_store
from spanlake.exporter.store.metrics import METRIC_COLUMNS, build_query
from store.conftest import BACKENDS, uri_for
from store.factories import BASE_NS, make_trace

MINUTE_NS = 60 * 10**9
HOUR_MS = 3_600_000


def seed(store: Store) -> None:
    """Traces over ~3 hours: three models, errors, tags, users, nested SDK spans, one trace
    still in progress, one in another experiment."""
    spans = []
    for n in range(48):
        spans += make_trace(
            n,
            llm_calls=1 + n % 3,
            model=None if n % 4 else "gpt-4o",
            status="ERROR" if n % 7 == 0 else "OK",
            tokens=100 + 37 * n,
            nested_llm=n % 5 == 0,
            tags={"env": "prod" if n % 2 else "dev"} if n % 6 else {},
            metadata={"user": f"user-{n % 3}", "session": f"s-{n % 5}"},
            start_ns=BASE_NS + n * 4 * MINUTE_NS,
        )
    _root, *children = make_trace(90, start_ns=BASE_NS + 30 * MINUTE_NS)
    spans += children  # in progress: no duration, still counted
    spans += make_trace(91, experiment="other", start_ns=BASE_NS + 10 * MINUTE_NS)
    store.write_spans(spans)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    s = open_store(uri_for(request.param, tmp_path_factory.mktemp("metrics")))
    seed(s)
    yield s
    s.close()


# -- the reference: plain Python over the store's own records ------------------------------
def _rank_value(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[math.ceil(percent * len(ordered) / 100) - 1])


def _group_values(info: TraceInfo, name: str, span: Any = None) -> list[Any]:
    if name in ("model", "provider"):
        if span is not None:
            return [getattr(span, name)]
        values = info.models if name == "model" else info.providers
        return list(values) or [None]
    if name == "span_type":
        return [span.span_type]
    if name in ("user", "session"):
        return [info.metadata.get(name)]
    kind, _, key = name.partition(".")
    return [(info.tags if kind == "tag" else info.metadata).get(key)]


def reference(
    store: Store,
    experiments: list[str] | None,
    filter_string: str | None,
    group_by: list[str],
    interval_ms: int,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    infos = store.search_traces(experiments, filter_string, max_results=10_000).traces
    span_level = "span_type" in group_by
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for info in infos:
        if span_level:
            items = []
            for span in store.get_trace(info.trace_id).spans:
                u = span.token_usage
                price = price_for(span.model) if span.model and u is not None else None
                items.append(
                    (
                        span.start_time_ns // 1_000_000,
                        [_group_values(info, g, span) for g in group_by],
                        {
                            "error": span.status == "ERROR",
                            "lat": None
                            if span.end_time_ns is None
                            else (span.end_time_ns - span.start_time_ns) / 1e6,
                            "usage": u,
                            "cost": price.cost(u) if price is not None and u is not None else None,
                        },
                    )
                )
        else:
            items = [
                (
                    info.request_time_ms,
                    [_group_values(info, g) for g in group_by],
                    {
                        "error": info.state.value == "ERROR",
                        "lat": info.execution_time_ms,
                        "usage": info.token_usage,
                        "cost": info.cost_usd,
                    },
                )
            ]
        for when, groups, item in items:
            if (start_ms is not None and when < start_ms) or (
                end_ms is not None and when >= end_ms
            ):
                continue
            combos: list[tuple[Any, ...]] = [()]
            for values in groups:
                combos = [(*c, v) for c in combos for v in values]
            for combo in combos:
                cells.setdefault((when - when % interval_ms, *combo), []).append(item)
    out = {}
    for key, items in cells.items():
        lats = [i["lat"] for i in items if i["lat"] is not None]
        costs = [i["cost"] for i in items if i["cost"] is not None]
        usages = [i["usage"] for i in items if i["usage"] is not None]
        out[key] = {
            "count": len(items),
            "error_count": sum(i["error"] for i in items),
            "latency_p50_ms": _rank_value(lats, 50),
            "latency_p90_ms": _rank_value(lats, 90),
            "latency_p99_ms": _rank_value(lats, 99),
            **{
                c: sum(getattr(u, c) for u in usages)
                for c in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "total_tokens",
                )
            },
            "cost_usd": sum(costs) if costs else None,
        }
    return out


def _by_key(
    rows: list[dict[str, Any]], group_by: list[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["bucket_start_ms"], *(r["group"][g] for g in group_by)): r for r in rows}


CASES: list[tuple[list[str] | None, str | None, list[str], str]] = [
    (None, None, [], "1h"),
    (["exp"], None, ["model"], "1h"),
    (["exp"], "status = 'OK'", ["provider"], "30m"),
    (None, "tags.env = 'prod' OR metadata.user = 'user-1'", ["tag.env", "user"], "1h"),
    (["exp"], "model = 'gpt-4o'", ["model", "session"], "1d"),
    (["exp"], None, ["span_type"], "1h"),
    (
        ["exp"],
        "span.type = 'TOOL' AND execution_time_ms > 1000",
        ["span_type", "model", "provider"],
        "1h",
    ),
    (["exp", "other"], None, ["span_type", "tag.env"], "15m"),
]


@pytest.mark.parametrize(("experiments", "filter_string", "group_by", "interval"), CASES)
def test_metrics_equal_the_reference(
    seeded: Store,
    experiments: list[str] | None,
    filter_string: str | None,
    group_by: list[str],
    interval: str,
) -> None:
    query = build_query(experiments, filter_string, group_by, interval)
    got = _by_key(seeded.trace_metrics(query).rows, group_by)
    expected = reference(seeded, experiments, filter_string, group_by, query.interval_ms)
    assert got.keys() == expected.keys()
    assert got
    for key, want in expected.items():
        row = got[key]
        for name, value in want.items():
            if name == "cost_usd" and value is not None:
                assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, name)
            else:
                assert row[name] == value, (key, name)
        assert row["error_rate"] == row["error_count"] / row["count"]


def test_rows_are_ordered_and_shaped(seeded: Store) -> None:
    result = seeded.trace_metrics(build_query(["exp"], None, ["model"], "1h"))
    rows = result.rows
    keys = [(r["bucket_start_ms"], r["group"]["model"]) for r in rows]
    assert keys == sorted(keys)
    assert {r["bucket_start_ms"] % HOUR_MS for r in rows} == {0}
    first = rows[0]
    assert first["bucket_start"] == datetime.fromtimestamp(
        first["bucket_start_ms"] / 1000, tz=timezone.utc
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert list(first) == ["bucket_start_ms", "bucket_start", "group", *METRIC_COLUMNS]
    table = result.to_arrow()
    assert table.column_names == ["bucket_start", "model", *METRIC_COLUMNS]
    assert str(table.schema.field("bucket_start").type) == "timestamp[ms, tz=UTC]"
    assert table.num_rows == len(rows)
    frame = result.to_pandas()
    assert list(frame["count"]) == [r["count"] for r in rows]
    doc = result.to_dict()
    assert doc["unit"] == "trace" and doc["interval"] == "1h" and doc["group_by"] == ["model"]


def test_in_progress_trace_counts_without_a_latency(seeded: Store) -> None:
    query = build_query(["exp"], "status = 'IN_PROGRESS'", [], "1d")
    (row,) = seeded.trace_metrics(query).rows
    assert row["count"] == 1 and row["error_count"] == 0
    assert row["latency_p50_ms"] is None and row["cost_usd"] is not None


def test_time_range_is_start_inclusive_end_exclusive(seeded: Store) -> None:
    start = BASE_NS // 1_000_000 + 40 * 60_000  # trace 10 starts exactly here
    end = start + 60 * 60_000
    query = build_query(["exp"], None, [], "1m", start, end)
    rows = seeded.trace_metrics(query).rows
    assert sum(r["count"] for r in rows) == 15  # traces 10..24, every 4 minutes
    assert rows[0]["bucket_start_ms"] == start - start % 60_000  # buckets align to the epoch
    expected = reference(seeded, ["exp"], None, [], 60_000, start, end)
    assert {r["bucket_start_ms"]: r["count"] for r in rows} == {
        k[0]: v["count"] for k, v in expected.items()
    }
    by_datetime = build_query(
        ["exp"], None, [], "1m", datetime.fromtimestamp(start / 1000, tz=timezone.utc), end
    )
    assert seeded.trace_metrics(by_datetime).rows == rows


def test_model_groups_count_a_trace_under_each_model(seeded: Store) -> None:
    everything = seeded.trace_metrics(build_query(["exp"], None, [], "1d")).rows
    per_model = seeded.trace_metrics(build_query(["exp"], None, ["model"], "1d")).rows
    traces = sum(r["count"] for r in everything)
    assert traces == 49
    assert sum(r["count"] for r in per_model) > traces  # multi-model traces count per model
    assert {r["group"]["model"] for r in per_model} == {
        "gpt-4o",
        "claude-sonnet-4",
        "gemini-2.0-flash",
    }


def test_bad_arguments_are_clear_errors(seeded: Store) -> None:
    with pytest.raises(FilterError, match="group_by"):
        build_query(None, None, ["nope"])
    with pytest.raises(FilterError, match="model and provider"):
        build_query(None, None, ["model", "provider"])
    with pytest.raises(FilterError, match="interval"):
        build_query(None, None, [], "5 fortnights")
    with pytest.raises(FilterError, match="time range"):
        build_query(None, None, [], "1h", 2000, 1000)
    with pytest.raises(FilterError, match="Invalid time"):
        build_query(None, None, [], "1h", "yesterday-ish")
    with pytest.raises(FilterError, match="unknown field"):
        seeded.trace_metrics(build_query(None, "bogus = 1", []))


def test_unknown_experiment_gives_no_rows(seeded: Store) -> None:
    assert seeded.trace_metrics(build_query(["nope"], None, ["model"])).rows == []
    assert seeded.trace_metrics(build_query([], None, [])).rows == []


def test_all_stores_give_identical_numbers(tmp_path: Any) -> None:
    stores = {b: open_store(uri_for(b, tmp_path, b)) for b in BACKENDS}
    try:
        for s in stores.values():
            seed(s)
            s.set_trace_tag(make_trace(3)[0].trace_id, "env", "staging")
        for experiments, filter_string, group_by, interval in [
            *CASES,
            (None, None, ["tag.env"], "1m"),
            (None, "feedback.x = 1 OR span.model = 'gpt-4o'", ["model"], "2h"),
        ]:
            query = build_query(experiments, filter_string, group_by, interval)
            answers = {b: s.trace_metrics(query).rows for b, s in stores.items()}
            assert answers["sqlite"], query
            assert answers["parquet"] == answers["sqlite"], query
            assert answers["delta"] == answers["sqlite"], query
        staged = stores["sqlite"].trace_metrics(build_query(None, None, ["tag.env"], "1d")).rows
        assert "staging" in {r["group"]["tag.env"] for r in staged}
    finally:
        for s in stores.values():
            s.close()
