"""The Arrow builders' shortcuts give the same bytes/arrays as the plain versions.

``spans_to_table`` and ``traces_to_table`` run on every lake write; their shortcuts (events
encoded as plain dicts, map columns from flat keys/values, dates formatted once per day)
must not change a single stored value. The references below are the previous code.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from spanlake.exporter.records import SpanEvent, TokenUsage, TraceInfo, TraceState
from spanlake.exporter.rollup import rollup
from spanlake.exporter.store import _arrow
from store.factories import make_trace


def _ref_dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def ref_events_json(events: Sequence[SpanEvent]) -> bytes:
    return (
        b"["
        + b",".join(
            [
                b'{"name":'
                + _ref_dumps(e.name)
                + b',"time_ns":'
                + _ref_dumps(e.time_ns)
                + b',"attributes":'
                + _ref_dumps(e.attributes)
                + b"}"
                for e in events
            ]
        )
        + b"]"
    )


def ref_traces_columns(infos: Sequence[TraceInfo]) -> list[pa.Array]:
    return [
        pa.array([list(i.tags.items()) for i in infos], _arrow.TRACES_SCHEMA.field("tags").type),
        pa.array(
            [list(i.metadata.items()) for i in infos], _arrow.TRACES_SCHEMA.field("metadata").type
        ),
        pa.array([_arrow.utc_date(i.request_time_ms * 1_000_000) for i in infos], pa.string()),
    ]


_ODD = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.builds(dt.datetime, st.integers(2000, 2030), st.integers(1, 12), st.integers(1, 28)),
    st.builds(decimal.Decimal, st.integers()),
    st.frozensets(st.integers(0, 3), max_size=2),
)
_ATTRS = st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3), st.none()), _ODD)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(SpanEvent, st.text(max_size=8), st.integers(0, 2**63 - 1), _ATTRS),
        min_size=1,
        max_size=4,
    )
)
def test_events_json_equals_reference(events: list[SpanEvent]) -> None:
    try:
        expected: bytes | type[Exception] = ref_events_json(events)
    except TypeError as exc:  # e.g. a set orjson cannot sort out: both must fail
        expected = type(exc)
    try:
        got: bytes | type[Exception] = _arrow._events_json(events)
    except TypeError as exc:
        got = type(exc)
    assert got == expected


_MAP = st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.text(max_size=4)), max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_MAP, _MAP, st.integers(-(10**12), 10**14)),
        max_size=6,
    )
)
def test_traces_to_table_columns_equal_reference(
    rows: list[tuple[dict[str, str], dict[str, str], int]],
) -> None:
    infos = [
        TraceInfo(
            trace_id=f"t{n}",
            experiment="e",
            name=None,
            state=TraceState.OK,
            request_time_ms=ms,
            execution_time_ms=None,
            request_preview=None,
            response_preview=None,
            tags=tags,
            metadata=metadata,
            token_usage=TokenUsage(1, 2, 3, 4, 5, 6),
        )
        for n, (tags, metadata, ms) in enumerate(rows)
    ]
    table = _arrow.traces_to_table(infos, [0] * len(infos), 1)
    assert table.schema == _arrow.TRACES_SCHEMA
    tags, metadata, dates = ref_traces_columns(infos)
    assert table.column("tags").combine_chunks().equals(tags)
    assert table.column("metadata").combine_chunks().equals(metadata)
    assert table.column("date").combine_chunks().equals(dates)


def test_realistic_batches_equal_reference() -> None:
    spans = [s for n in range(60) for s in make_trace(n, llm_calls=1 + n % 3, tags={"a": "b"})]
    spans[1].attributes["note"] = "héllo ✓ 😀"  # non-ASCII: the same UTF-8 either way
    spans[2].events[0].attributes["note"] = "ünïcode"
    spans[0].trace_metadata["user"] = "zoë"
    table = _arrow.spans_to_table(spans)
    assert table.schema == _arrow.SPANS_SCHEMA
    assert table.column("attributes").to_pylist() == [
        orjson.dumps(s.attributes).decode() for s in spans
    ]
    for column in ("resource", "trace_tags", "trace_metadata"):
        assert table.column(column).to_pylist() == [
            orjson.dumps(v).decode() if (v := getattr(s, column)) else None for s in spans
        ]
    events = [ref_events_json(s.events) if s.events else None for s in spans]
    assert table.column("events").to_pylist() == [e.decode() if e else None for e in events]
    assert table.column("date").to_pylist() == [_arrow.utc_date(s.start_time_ns) for s in spans]
    infos = [rollup([s for s in spans if s.trace_id == t]) for t in {s.trace_id for s in spans}]
    rows = _arrow.traces_to_table(infos, [0] * len(infos), 1)
    assert _arrow.table_to_infos(rows) == infos
