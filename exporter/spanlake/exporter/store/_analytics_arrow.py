"""``trace_metrics`` on the lake stores, vectorised with pyarrow.compute.

The trace level works on the store's in-memory winning trace rows; the span level reads
the needed span columns only (dedupes replayed spans as ``compact`` would). Grouping and
sums are Arrow hash aggregates; percentiles come from one sort by (bucket, group,
latency): groups are then contiguous runs and the nearest-rank value is a ``take`` at
``run start + rank - 1``. Semantics: :mod:`spanlake.exporter.store.metrics`; the results
equal the SQLite store's (:mod:`._analytics_sqlite`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spanlake.exporter.store.metrics import (
    NANO,
    PERCENTILES,
    TOKEN_COLUMNS,
    GroupKey,
    Key,
    MetricsQuery,
    Partial,
)

#: Reads span columns: (columns) -> table with ``trace_id`` + those columns.
SpanReader = Callable[[list[str]], pa.Table]

_SPAN_COLUMNS = [
    "span_id",
    "span_type",
    "model",
    "provider",
    "start_time_ns",
    "end_time_ns",
    "status",
    *TOKEN_COLUMNS,
]


def _map_value(column: pa.ChunkedArray | pa.Array, key: str) -> pa.Array:
    """Per row of a map<string, string> column: the value of ``key`` or null."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    if n == 0:
        return pa.nulls(0, pa.string())
    offsets = array.offsets
    keys = pc.list_flatten(pa.ListArray.from_arrays(offsets, array.keys))
    values = pc.list_flatten(pa.ListArray.from_arrays(offsets, array.items))
    # list_parent_indices aborts on map arrays; the equivalent list view does not.
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, array.keys))
    hit = pc.fill_null(pc.equal(keys, key), False)
    rows = pc.filter(parents, hit)
    found = pc.filter(values, hit)
    position = pc.index_in(pa.array(range(n), pa.int64()), value_set=rows.cast(pa.int64()))
    return found.take(position).cast(pa.string())


def _explode(table: pa.Table, column: str) -> tuple[pa.Table, pa.Array]:
    """One row per (row, list element) of a list<string> column; a row with an empty or
    null list stays once with a null element (SQL's LEFT JOIN json_each)."""
    lists = table.column(column).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    parents = pc.list_parent_indices(lists)
    values = pc.list_flatten(lists)
    empty = pc.indices_nonzero(pc.equal(lengths, 0))
    rows = pa.concat_arrays([parents.cast(pa.int64()), empty.cast(pa.int64())])
    elements = pa.concat_arrays([values.cast(pa.string()), pa.nulls(len(empty), pa.string())])
    return table.take(rows), elements


def _group_column(table: pa.Table, key: GroupKey, span_level: bool) -> pa.Array:
    if key.kind == "span_type":
        return table.column("span_type").combine_chunks()
    if key.kind in ("model", "provider") and span_level:
        return table.column(key.kind).combine_chunks()
    column = "tags" if key.kind == "tag" else "metadata"
    return _map_value(table.column(column), key.key)


def _bucket(ms: pa.Array | pa.ChunkedArray, interval_ms: int) -> pa.Array:
    """Bucket start: ms - ms % interval, with SQL's truncating division."""
    return pc.multiply(pc.divide(ms, interval_ms), interval_ms)


def _runs(sorted_keys: list[pa.Array]) -> pa.Array:
    """Start index of each run of equal key tuples (nulls equal to nulls) in sorted rows."""
    n = len(sorted_keys[0])
    if n == 0:
        return pa.array([], pa.int64())
    changed = pa.array([False] * (n - 1), pa.bool_())
    for array in sorted_keys:
        head, tail = array.slice(0, n - 1), array.slice(1)
        differs = pc.or_(
            pc.fill_null(pc.not_equal(tail, head), False),
            pc.xor(pc.is_null(tail), pc.is_null(head)),
        )
        changed = pc.or_(changed, differs)
    starts = pc.add(pc.indices_nonzero(changed).cast(pa.int64()), 1)
    return pa.concat_arrays([pa.array([0], pa.int64()), starts])


def _percentiles(rows: pa.Table, keys: list[str]) -> dict[Key, list[float | None]]:
    """(bucket, group) -> nearest-rank latency percentiles over rows with a latency."""
    valid = rows.filter(pc.is_valid(rows.column("lat")))
    if valid.num_rows == 0:
        return {}
    # Rows of a group need only be adjacent, not in any order: sort string keys by their
    # dictionary codes (integers, nulls last) rather than by the strings.
    codes = {
        k: pc.dictionary_encode(valid.column(k)).combine_chunks().indices
        if pa.types.is_string(valid.schema.field(k).type)
        else valid.column(k)
        for k in keys
    }
    sortable = pa.table({**{f"_{k}": codes[k] for k in keys}, "lat": valid.column("lat")})
    order = pc.sort_indices(
        sortable, sort_keys=[(f"_{k}", "ascending") for k in keys] + [("lat", "ascending")]
    )
    ordered = valid.take(order)
    key_arrays = [ordered.column(k).combine_chunks() for k in keys]
    starts = _runs(key_arrays)
    ends = pa.concat_arrays([starts.slice(1), pa.array([ordered.num_rows], pa.int64())])
    counts = pc.subtract(ends, starts)
    lat = ordered.column("lat").combine_chunks()
    picked = []
    for percent in PERCENTILES:
        # rank = ceil(p * n / 100), 1-based: integer arithmetic as in SQL
        ranks = pc.divide(pc.add(pc.multiply(counts, percent), 99), 100)
        picked.append(lat.take(pc.subtract(pc.add(starts, ranks), 1)).to_pylist())
    group_keys = zip(*(a.take(starts).to_pylist() for a in key_arrays), strict=True)
    return {
        tuple(k): [picked[j][i] for j in range(len(PERCENTILES))] for i, k in enumerate(group_keys)
    }


def _aggregate(rows: pa.Table, keys: list[str], sums: list[str]) -> list[dict[str, Any]]:
    grouped = rows.group_by(keys, use_threads=False).aggregate(
        [([], "count_all"), *((c, "sum") for c in sums)]
    )
    result: list[dict[str, Any]] = grouped.to_pylist()
    return result


def _dedupe_spans(spans: pa.Table) -> pa.Table:
    """First row per (trace_id, span_id): a replayed span is one span (as on SQLite)."""
    if spans.num_rows == 0:
        return spans
    keyed = spans.append_column("_i", pa.array(range(spans.num_rows), pa.int64()))
    first = keyed.group_by(["trace_id", "span_id"], use_threads=False).aggregate([("_i", "min")])
    if first.num_rows == spans.num_rows:
        return spans
    return spans.take(first.column("_i_min"))


def arrow_trace_metrics(
    traces: pa.Table,
    mask: pa.Array | None,
    query: MetricsQuery,
    read_spans: SpanReader,
) -> dict[Key, Partial]:
    """The (bucket, group) -> :class:`Partial` map for ``query``. ``traces``: the winning
    trace rows; ``mask``: the rows the experiment and filter select (None: all)."""
    selected = traces if mask is None else traces.filter(mask)
    if query.span_level:
        rows = _span_rows(selected, query, read_spans)
    else:
        rows = _trace_rows(selected, query)
    keys = ["b", *(f"g{i}" for i in range(len(query.group_by)))]
    n_tokens = len(TOKEN_COLUMNS)
    out: dict[Key, Partial] = {}
    if rows.num_rows == 0:
        return out
    sums = ["err", *(f"k{n}" for n in range(n_tokens))] + ([] if query.span_level else ["nano"])
    for r in _aggregate(rows, keys, sums):
        key: Key = tuple(r[k] for k in keys)
        out[key] = Partial(
            count=int(r["count_all"]),
            error_count=int(r["err_sum"] or 0),
            tokens=[int(r[f"k{n}_sum"] or 0) for n in range(n_tokens)],
            cost_nano=None if query.span_level or r["nano_sum"] is None else int(r["nano_sum"]),
        )
    for key, values in _percentiles(rows.select([*keys, "lat"]), keys).items():
        out[key].percentiles = values
    if query.span_level:
        priced = rows.filter(pc.and_(rows.column("hu"), pc.is_valid(rows.column("pm"))))
        if priced.num_rows:
            for r in _aggregate(priced, [*keys, "pm"], ["plain", "k1", "k2", "k3"]):
                partial = out[tuple(r[k] for k in keys)]
                partial.usage_by_model[r["pm"]] = [
                    int(r[f"{c}_sum"] or 0) for c in ("plain", "k1", "k2", "k3")
                ]
    return out


def _time_mask(times: pa.ChunkedArray | pa.Array, start: int | None, end: int | None) -> Any:
    mask = None
    if start is not None:
        mask = pc.greater_equal(times, start)
    if end is not None:
        upper = pc.less(times, end)
        mask = upper if mask is None else pc.and_(mask, upper)
    return None if mask is None else pc.fill_null(mask, False)


def _trace_rows(traces: pa.Table, query: MetricsQuery) -> pa.Table:
    # Only the columns used: the explode below copies every column it keeps.
    needed = ["request_time_ms", "state", "execution_time_ms", *TOKEN_COLUMNS, "cost_usd"]
    for key in query.group_by:
        needed.append(
            f"{key.kind}s"
            if key.kind in ("model", "provider")
            else ("tags" if key.kind == "tag" else "metadata")
        )
    traces = traces.select(list(dict.fromkeys(needed)))
    window = _time_mask(traces.column("request_time_ms"), query.start_ms, query.end_ms)
    if window is not None:
        traces = traces.filter(window)
    columns: dict[str, Any] = {}
    for i, key in enumerate(query.group_by):
        if key.kind in ("model", "provider"):
            # each model (provider) the trace used: one row each (parse_group_by allows
            # at most one of the two lists at trace level)
            traces, elements = _explode(traces, f"{key.kind}s")
            columns[f"g{i}"] = elements
    for i, key in enumerate(query.group_by):
        if key.kind not in ("model", "provider"):
            columns[f"g{i}"] = _group_column(traces, key, span_level=False)
    cost = traces.column("cost_usd")
    nano = pc.round(pc.multiply(cost, float(NANO)), round_mode="half_towards_infinity")
    table = {
        "b": _bucket(traces.column("request_time_ms"), query.interval_ms),
        **{f"g{i}": columns[f"g{i}"] for i in range(len(query.group_by))},
        "err": pc.equal(traces.column("state"), "ERROR").cast(pa.int64()),
        "lat": traces.column("execution_time_ms"),
        **{f"k{n}": traces.column(c) for n, c in enumerate(TOKEN_COLUMNS)},
        "nano": nano.cast(pa.int64()),
    }
    return pa.table(table)


def _span_rows(traces: pa.Table, query: MetricsQuery, read_spans: SpanReader) -> pa.Table:
    spans = read_spans(list(_SPAN_COLUMNS))
    window = _time_mask(
        spans.column("start_time_ns"),
        None if query.start_ms is None else query.start_ms * 1_000_000,
        None if query.end_ms is None else query.end_ms * 1_000_000,
    )
    if window is not None:
        spans = spans.filter(window)
    position = pc.index_in(spans.column("trace_id"), value_set=traces.column("trace_id"))
    keep = pc.is_valid(position)
    spans = _dedupe_spans(spans.filter(keep))
    parents = None
    if any(k.kind in ("tag", "metadata") for k in query.group_by):
        position = pc.index_in(spans.column("trace_id"), value_set=traces.column("trace_id"))
        parents = traces.take(position)
    tokens = {f"k{n}": pc.fill_null(spans.column(c), 0) for n, c in enumerate(TOKEN_COLUMNS)}
    has_usage = pc.is_valid(spans.column("input_tokens"))
    plain = pc.max_element_wise(
        pc.subtract(pc.subtract(tokens["k0"], tokens["k2"]), tokens["k3"]), 0
    )
    start = spans.column("start_time_ns")
    duration = pc.subtract(spans.column("end_time_ns"), start).cast(pa.float64())
    table: dict[str, Any] = {"b": _bucket(pc.divide(start, 1_000_000), query.interval_ms)}
    for i, key in enumerate(query.group_by):
        source = spans if key.kind in ("span_type", "model", "provider") else parents
        assert source is not None
        table[f"g{i}"] = _group_column(source, key, span_level=True)
    table.update(
        {
            "err": pc.equal(spans.column("status"), "ERROR").cast(pa.int64()),
            "lat": pc.divide(duration, 1e6),
            **tokens,
            "hu": has_usage,
            "pm": spans.column("model"),
            "plain": plain,
        }
    )
    return pa.table(table)
