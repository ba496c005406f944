"""The lake tables' Arrow schemas and the record <-> Arrow conversions (Parquet and Delta).

One row per span with the fields people filter and group by promoted to typed columns;
attributes, events and resource stay JSON text so any engine can read them. ``experiment``
and ``date`` (UTC, ``YYYY-MM-DD``) are partition columns: they live in the directory names
(hive style), not inside the data files, exactly as Delta/Spark lay partitions out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from itertools import accumulate
from typing import Any

import orjson
import pyarrow as pa

from spanlake.exporter.records import (
    Assessment,
    AssessmentKind,
    AssessmentSource,
    Experiment,
    SpanEvent,
    SpanRecord,
    TokenUsage,
    TraceInfo,
    TraceState,
)

USAGE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)
PARTITION_COLUMNS = ["experiment", "date"]

_S = pa.string()
_I = pa.int64()
_TAGS = pa.map_(pa.string(), pa.string())

SPANS_SCHEMA = pa.schema(
    [
        ("trace_id", _S),
        ("span_id", _S),
        ("parent_span_id", _S),
        ("name", _S),
        ("span_type", _S),
        ("kind", _S),
        ("start_time_ns", _I),
        ("end_time_ns", _I),
        ("status", _S),
        ("status_message", _S),
        ("inputs", _S),
        ("outputs", _S),
        ("model", _S),
        ("provider", _S),
        # Null on every usage column when the span reports no usage at all.
        *[(c, _I) for c in USAGE_COLUMNS],
        ("attributes", _S),
        ("events", _S),
        ("resource", _S),
        ("service_name", _S),
        ("scope", _S),
        ("trace_tags", _S),
        ("trace_metadata", _S),
        ("client_request_id", _S),
        ("experiment", _S),
        ("date", _S),
    ]
)

TRACES_SCHEMA = pa.schema(
    [
        ("trace_id", _S),
        ("name", _S),
        ("state", _S),
        ("request_time_ms", _I),
        ("execution_time_ms", _I),
        ("request_preview", _S),
        ("response_preview", _S),
        ("tags", _TAGS),
        ("metadata", _TAGS),
        *[(c, _I) for c in USAGE_COLUMNS],
        ("cost_usd", pa.float64()),
        ("span_count", _I),
        ("models", pa.list_(_S)),
        ("providers", pa.list_(_S)),
        ("service_name", _S),
        ("client_request_id", _S),
        # Bookkeeping: a trace row is re-derived on every write touching the trace; the
        # row built from the most spans + tag overrides wins (see _lake.py).
        ("tag_override_count", _I),
        ("computed_time_ns", _I),
        ("experiment", _S),
        ("date", _S),
    ]
)

ASSESSMENTS_SCHEMA = pa.schema(
    [
        ("assessment_id", _S),
        ("trace_id", _S),
        ("span_id", _S),
        ("name", _S),
        ("kind", _S),
        ("value", _S),  # JSON text
        ("rationale", _S),
        ("source_type", _S),
        ("source_id", _S),
        ("time_ms", _I),
        ("metadata", _S),  # JSON text
        ("logged_time_ns", _I),
    ]
)

TAG_OVERRIDES_SCHEMA = pa.schema(
    [("trace_id", _S), ("key", _S), ("value", _S), ("time_ns", _I)]  # value null = deleted
)

EXPERIMENTS_SCHEMA = pa.schema(
    [("experiment_id", _S), ("name", _S), ("created_time_ms", _I), ("tags", _S)]
)

#: Columns the roll-up needs (a "light" span: no attributes/events).
LIGHT_SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "start_time_ns",
    "end_time_ns",
    "status",
    "inputs",
    "outputs",
    "model",
    "provider",
    *USAGE_COLUMNS,
    "service_name",
    "trace_tags",
    "trace_metadata",
    "client_request_id",
    "experiment",
]

_NS_PER_DAY = 86_400 * 1_000_000_000
_day_cache: dict[int, str] = {}


def utc_date(time_ns: int) -> str:
    """``YYYY-MM-DD`` of a nanosecond timestamp (memoised: batches share few days)."""
    return _utc_day(time_ns // _NS_PER_DAY)


def _utc_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch (memoised)."""
    text = _day_cache.get(day)
    if text is None:
        text = datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
        if len(_day_cache) < 100_000:
            _day_cache[day] = text
    return text


def _utc_dates(times_ns: list[int]) -> list[str]:
    """:func:`utc_date` of many timestamps, each distinct day formatted once."""
    days = [t // _NS_PER_DAY for t in times_ns]
    texts = {day: _utc_day(day) for day in set(days)}
    return [texts[day] for day in days]


def dumps(value: Any) -> str:
    """JSON text. Decoded at once on purpose: an orjson ``bytes`` result holds a 4 KB+
    allocation whatever its length (orjson 3.13), so code keeping many of them (a batch's
    columns) faulted in megabytes of fresh pages per batch; an exact-size str costs a copy
    and saves several times that (the column's UTF-8 is the same)."""
    return _dumps_bytes(value).decode()


def _dumps_bytes(value: Any) -> bytes:
    """orjson's fast path; the tolerant options (non-str keys, odd values) only if needed."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def _events_json(events: Sequence[SpanEvent]) -> bytes:
    """The events as a JSON array of ``{"name", "time_ns", "attributes"}`` objects: plain
    dicts encode faster than orjson's dataclass path, same bytes."""
    return _dumps_bytes(
        [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in events]
    )


def spans_to_table(spans: Sequence[SpanRecord]) -> pa.Table:
    """SpanRecords -> one Arrow table in :data:`SPANS_SCHEMA` (columnar build: the hot path).

    One list comprehension per column (faster in CPython than one loop appending to many
    lists); JSON encoded with orjson, kept as str (see :func:`dumps`); per-process dicts
    (the resource) encoded once per distinct object."""
    # Spans of one process share their resource dict: encode each distinct one once.
    resources = [s.resource for s in spans]
    resource_ids = [id(r) for r in resources]
    distinct = dict(zip(resource_ids, resources, strict=True))
    resource_json = {k: dumps(r) if r else None for k, r in distinct.items()}
    services = {k: _service_name(r) for k, r in distinct.items()}
    usages = [s.token_usage for s in spans]
    start = [s.start_time_ns for s in spans]
    columns: list[Any] = [
        [s.trace_id for s in spans],
        [s.span_id for s in spans],
        [s.parent_span_id for s in spans],
        [s.name for s in spans],
        [s.span_type for s in spans],
        [s.kind for s in spans],
        start,
        [s.end_time_ns for s in spans],
        [s.status for s in spans],
        [s.status_message for s in spans],
        [s.inputs for s in spans],
        [s.outputs for s in spans],
        [s.model for s in spans],
        [s.provider for s in spans],
        [u.input_tokens if u else None for u in usages],
        [u.output_tokens if u else None for u in usages],
        [u.total_tokens if u else None for u in usages],
        [u.cache_read_input_tokens if u else None for u in usages],
        [u.cache_creation_input_tokens if u else None for u in usages],
        [u.reasoning_output_tokens if u else None for u in usages],
        [dumps(s.attributes) for s in spans],
        [_events_json(e).decode() if (e := s.events) else None for s in spans],
        [resource_json[k] for k in resource_ids],
        [services[k] for k in resource_ids],
        [s.scope for s in spans],
        [dumps(t) if (t := s.trace_tags) else None for s in spans],
        [dumps(m) if (m := s.trace_metadata) else None for s in spans],
        [s.client_request_id for s in spans],
        [s.experiment for s in spans],
        _utc_dates(start),
    ]
    arrays = [pa.array(col, f.type) for col, f in zip(columns, SPANS_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SPANS_SCHEMA)


def _service_name(resource: Mapping[str, Any]) -> str | None:
    """As :attr:`SpanRecord.service_name`."""
    value = resource.get("service.name")
    return str(value) if value is not None else None


def _loads(text: str | None, empty: Any) -> Any:
    return orjson.loads(text) if text else empty


def table_to_spans(table: pa.Table, *, light: bool = False) -> list[SpanRecord]:
    """Arrow rows -> SpanRecords. ``light`` rows (:data:`LIGHT_SPAN_COLUMNS`) carry what the
    roll-up needs; inputs/outputs are kept only for roots (previews) to bound memory."""
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    n = table.num_rows
    none = [None] * n
    usage_cols = [cols[c] for c in USAGE_COLUMNS]
    usages = [
        TokenUsage(*vals) if vals[0] is not None else None for vals in zip(*usage_cols, strict=True)
    ]
    out: list[SpanRecord] = []
    get = cols.get
    attributes, events, resource = get("attributes", none), get("events", none), get("resource")
    services = cols["service_name"]
    for i in range(n):
        parent = cols["parent_span_id"][i]
        is_root = parent is None
        out.append(
            SpanRecord(
                trace_id=cols["trace_id"][i],
                span_id=cols["span_id"][i],
                parent_span_id=parent,
                experiment=cols["experiment"][i],
                name=cols["name"][i],
                span_type=get("span_type", none)[i] or "",
                kind=get("kind", none)[i] or "",
                start_time_ns=cols["start_time_ns"][i],
                end_time_ns=cols["end_time_ns"][i],
                status=cols["status"][i],
                status_message=get("status_message", none)[i] or "",
                inputs=cols["inputs"][i] if (is_root or not light) else None,
                outputs=cols["outputs"][i] if (is_root or not light) else None,
                model=cols["model"][i],
                provider=cols["provider"][i],
                token_usage=usages[i],
                attributes=_loads(attributes[i], {}),
                events=[
                    SpanEvent(e["name"], e["time_ns"], e.get("attributes") or {})
                    for e in _loads(events[i], [])
                ],
                resource=(
                    _loads(resource[i], {})
                    if resource is not None
                    else ({"service.name": services[i]} if services[i] else {})
                ),
                scope=get("scope", none)[i],
                trace_tags=_loads(cols["trace_tags"][i], {}),
                trace_metadata=_loads(cols["trace_metadata"][i], {}),
                client_request_id=cols["client_request_id"][i],
            )
        )
    return out


def traces_to_table(
    infos: Sequence[TraceInfo], override_counts: Sequence[int], computed_time_ns: int
) -> pa.Table:
    """Trace records -> rows of :data:`TRACES_SCHEMA` (the map columns are built from flat
    keys/values and offsets: cheaper than converting per-row lists of pairs)."""
    usages = [i.token_usage for i in infos]
    columns: list[Any] = [
        [i.trace_id for i in infos],
        [i.name for i in infos],
        [i.state.value for i in infos],
        [i.request_time_ms for i in infos],
        [i.execution_time_ms for i in infos],
        [i.request_preview for i in infos],
        [i.response_preview for i in infos],
        _map_array([i.tags for i in infos]),
        _map_array([i.metadata for i in infos]),
        [u.input_tokens for u in usages],
        [u.output_tokens for u in usages],
        [u.total_tokens for u in usages],
        [u.cache_read_input_tokens for u in usages],
        [u.cache_creation_input_tokens for u in usages],
        [u.reasoning_output_tokens for u in usages],
        [i.cost_usd for i in infos],
        [i.span_count for i in infos],
        [i.models for i in infos],
        [i.providers for i in infos],
        [i.service_name for i in infos],
        [i.client_request_id for i in infos],
        list(override_counts),
        [computed_time_ns] * len(infos),
        [i.experiment for i in infos],
        _utc_dates([i.request_time_ms * 1_000_000 for i in infos]),
    ]
    arrays = [
        col if isinstance(col, pa.Array) else pa.array(col, f.type)
        for col, f in zip(columns, TRACES_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=TRACES_SCHEMA)


def _map_array(maps: list[dict[str, str]]) -> pa.Array:
    """Maps as a ``map<string, string>`` array (no null map)."""
    keys = [k for m in maps if m for k in m]
    values = [v for m in maps if m for v in m.values()]
    return pa.MapArray.from_arrays(
        pa.array([0, *accumulate(len(m) for m in maps)], pa.int32()),
        pa.array(keys, _S),
        pa.array(values, _S),
        type=_TAGS,
    )


def table_to_infos(table: pa.Table) -> list[TraceInfo]:
    out = []
    for row in table.to_pylist():
        out.append(
            TraceInfo(
                trace_id=row["trace_id"],
                experiment=row["experiment"],
                name=row["name"],
                state=TraceState(row["state"]),
                request_time_ms=row["request_time_ms"],
                execution_time_ms=row["execution_time_ms"],
                request_preview=row["request_preview"],
                response_preview=row["response_preview"],
                tags=dict(row["tags"] or ()),
                metadata=dict(row["metadata"] or ()),
                token_usage=TokenUsage(*(row[c] for c in USAGE_COLUMNS)),
                cost_usd=row["cost_usd"],
                span_count=row["span_count"],
                models=list(row["models"] or ()),
                providers=list(row["providers"] or ()),
                service_name=row["service_name"],
                client_request_id=row["client_request_id"],
            )
        )
    return out


def assessments_to_table(items: Sequence[Assessment], logged_time_ns: int) -> pa.Table:
    rows = {
        "assessment_id": [a.assessment_id for a in items],
        "trace_id": [a.trace_id for a in items],
        "span_id": [a.span_id for a in items],
        "name": [a.name for a in items],
        "kind": [a.kind.value for a in items],
        "value": [dumps(a.value) for a in items],
        "rationale": [a.rationale for a in items],
        "source_type": [a.source_type.value for a in items],
        "source_id": [a.source_id for a in items],
        "time_ms": [a.time_ms for a in items],
        "metadata": [dumps(a.metadata) for a in items],
        "logged_time_ns": [logged_time_ns] * len(items),
    }
    return pa.Table.from_pydict(rows, schema=ASSESSMENTS_SCHEMA)


def table_to_assessments(table: pa.Table) -> list[tuple[int, Assessment]]:
    """(logged_time_ns, Assessment) pairs: the latest log of an assessment id wins."""
    return [
        (
            r["logged_time_ns"],
            Assessment(
                assessment_id=r["assessment_id"],
                trace_id=r["trace_id"],
                span_id=r["span_id"],
                name=r["name"],
                kind=AssessmentKind(r["kind"]),
                value=orjson.loads(r["value"]),
                rationale=r["rationale"],
                source_type=AssessmentSource(r["source_type"]),
                source_id=r["source_id"],
                time_ms=r["time_ms"],
                metadata=_loads(r["metadata"], {}),
            ),
        )
        for r in table.to_pylist()
    ]


def experiments_to_table(items: Sequence[Experiment]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "experiment_id": [e.experiment_id for e in items],
            "name": [e.name for e in items],
            "created_time_ms": [e.created_time_ms for e in items],
            "tags": [dumps(e.tags) for e in items],
        },
        schema=EXPERIMENTS_SCHEMA,
    )


def table_to_experiments(table: pa.Table) -> list[Experiment]:
    return [
        Experiment(r["experiment_id"], r["name"], r["created_time_ms"], _loads(r["tags"], {}))
        for r in table.to_pylist()
    ]
