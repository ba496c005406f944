"""spanlake's query API: search and fetch traces, log feedback. MLflow's names.

    from spanlake.query import search_traces, get_trace, log_feedback

    traces = search_traces(experiment_names=["Default"], filter_string="status = 'ERROR'")
    table = traces.to_arrow()            # or traces.to_pandas()
    trace = get_trace(traces[0].trace_id)
    log_feedback(trace.info.trace_id, "correct", True, rationale="matches the docs")
    trace_metrics("Default", group_by=["model"], interval="1h", start="24h").to_pandas()

Every function takes ``store=`` (a URI or an open :class:`Store`); by default the store of
``SPANLAKE_STORE`` (else ``./spanlake.db``). Opened stores are reused per URI.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spanlake.exporter.errors import FilterError, NotFoundError, SpanlakeError
from spanlake.exporter.records import (
    Assessment,
    AssessmentKind,
    AssessmentSource,
    Experiment,
    Trace,
    TraceInfo,
)
from spanlake.exporter.store import Store, open_store
from spanlake.exporter.store.base import DEFAULT_MAX_RESULTS
from spanlake.exporter.store.metrics import TraceMetrics, build_query
from spanlake.exporter.store.uri import DEFAULT_STORE_URI, ENV_STORE

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = [
    "Assessment",
    "Experiment",
    "FilterError",
    "NotFoundError",
    "SpanlakeError",
    "Trace",
    "TraceInfo",
    "TraceList",
    "TraceMetrics",
    "delete_trace_tag",
    "get_trace",
    "list_experiments",
    "log_expectation",
    "log_feedback",
    "search_traces",
    "set_trace_tag",
    "trace_metrics",
]

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def _store(store: str | Store | None) -> Store:
    if isinstance(store, Store):
        return store
    import os

    uri = store or os.environ.get(ENV_STORE) or DEFAULT_STORE_URI
    with _stores_lock:
        opened = _stores.get(uri)
        if opened is None:
            opened = _stores[uri] = open_store(uri)
        return opened


class TraceList(list[TraceInfo]):
    """A page of trace records; ``next_page_token`` fetches the next page."""

    def __init__(self, traces: Iterable[TraceInfo], next_page_token: str | None = None) -> None:
        super().__init__(traces)
        self.next_page_token = next_page_token

    def to_arrow(self) -> pyarrow.Table:
        """One row per trace with typed columns (tags/metadata as map columns)."""
        import pyarrow as pa

        from spanlake.exporter.records import TokenUsage

        usage_fields = list(TokenUsage.__dataclass_fields__)
        schema = pa.schema(
            [
                ("trace_id", pa.string()),
                ("experiment", pa.string()),
                ("name", pa.string()),
                ("state", pa.string()),
                ("request_time", pa.timestamp("ms", tz="UTC")),
                ("execution_time_ms", pa.int64()),
                ("request_preview", pa.string()),
                ("response_preview", pa.string()),
                ("tags", pa.map_(pa.string(), pa.string())),
                ("metadata", pa.map_(pa.string(), pa.string())),
                *[(f, pa.int64()) for f in usage_fields],
                ("cost_usd", pa.float64()),
                ("span_count", pa.int64()),
                ("models", pa.list_(pa.string())),
                ("providers", pa.list_(pa.string())),
                ("service_name", pa.string()),
                ("client_request_id", pa.string()),
            ]
        )
        rows: dict[str, list[Any]] = {name: [] for name in schema.names}
        for t in self:
            rows["trace_id"].append(t.trace_id)
            rows["experiment"].append(t.experiment)
            rows["name"].append(t.name)
            rows["state"].append(t.state.value)
            rows["request_time"].append(t.request_time_ms)
            rows["execution_time_ms"].append(t.execution_time_ms)
            rows["request_preview"].append(t.request_preview)
            rows["response_preview"].append(t.response_preview)
            rows["tags"].append(list(t.tags.items()))
            rows["metadata"].append(list(t.metadata.items()))
            for f in usage_fields:
                rows[f].append(getattr(t.token_usage, f))
            rows["cost_usd"].append(t.cost_usd)
            rows["span_count"].append(t.span_count)
            rows["models"].append(t.models)
            rows["providers"].append(t.providers)
            rows["service_name"].append(t.service_name)
            rows["client_request_id"].append(t.client_request_id)
        return pa.table(rows, schema=schema)

    def to_pandas(self) -> pandas.DataFrame:
        """The same table as a pandas DataFrame (needs ``spanlake[pandas]``)."""
        return self.to_arrow().to_pandas()


def search_traces(
    experiment_names: Sequence[str] | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = DEFAULT_MAX_RESULTS,
    page_token: str | None = None,
    *,
    store: str | Store | None = None,
) -> TraceList:
    """Trace records matching ``filter_string`` (grammar: :mod:`spanlake.exporter.store.filter`),
    newest first unless ``order_by`` says otherwise. Raises :class:`FilterError` naming the
    bad token of a malformed filter."""
    page = _store(store).search_traces(
        experiment_names, filter_string, order_by, max_results, page_token
    )
    return TraceList(page.traces, page.next_page_token)


def trace_metrics(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    group_by: str | Sequence[str] | None = None,
    interval: str | int = "1h",
    start: datetime | int | float | str | None = None,
    end: datetime | int | float | str | None = None,
    *,
    store: str | Store | None = None,
) -> TraceMetrics:
    """Per time bucket (``interval``: ``1m``, ``1h``, ``1d``, any N + s/m/h/d) and group
    (``group_by``: ``model``, ``provider``, ``span_type``, ``tag.KEY``, ``metadata.KEY``,
    ``user``, ``session``): count, error count and rate, latency p50/p90/p99, tokens and
    cost, computed inside the store. ``filter`` is the search grammar; ``start`` (inclusive)
    and ``end`` (exclusive) take a datetime, epoch ms, ISO 8601 or a duration before now
    (``"24h"``). Returns :class:`TraceMetrics` (``.rows``, ``.to_arrow()``,
    ``.to_pandas()``); semantics in :mod:`spanlake.exporter.store.metrics`."""
    query = build_query(experiment, filter, group_by, interval, start, end)
    return _store(store).trace_metrics(query)


def get_trace(trace_id: str, *, store: str | Store | None = None) -> Trace:
    """The trace with all its spans and assessments; :class:`NotFoundError` if absent."""
    return _store(store).get_trace(trace_id)


def list_experiments(*, store: str | Store | None = None) -> list[Experiment]:
    return _store(store).list_experiments()


def set_trace_tag(trace_id: str, key: str, value: str, *, store: str | Store | None = None) -> None:
    """Set a (mutable) tag on a stored trace."""
    _store(store).set_trace_tag(trace_id, key, value)


def delete_trace_tag(trace_id: str, key: str, *, store: str | Store | None = None) -> None:
    _store(store).delete_trace_tag(trace_id, key)


def _log(
    kind: AssessmentKind,
    trace_id: str,
    name: str,
    value: Any,
    rationale: str | None,
    source_type: str | AssessmentSource,
    source_id: str | None,
    span_id: str | None,
    metadata: dict[str, str] | None,
    store: str | Store | None,
) -> Assessment:
    try:
        source = AssessmentSource(str(getattr(source_type, "value", source_type)).upper())
    except ValueError:
        raise SpanlakeError(
            f"source_type must be one of HUMAN, LLM_JUDGE, CODE; got {source_type!r}"
        ) from None
    assessment = Assessment(
        trace_id=trace_id.lower(),
        name=name,
        value=value,
        kind=kind,
        span_id=span_id,
        rationale=rationale,
        source_type=source,
        source_id=source_id,
        metadata=dict(metadata or {}),
    )
    return _store(store).log_assessment(assessment)


def log_feedback(
    trace_id: str,
    name: str,
    value: Any,
    *,
    rationale: str | None = None,
    source_type: str | AssessmentSource = AssessmentSource.HUMAN,
    source_id: str | None = None,
    span_id: str | None = None,
    metadata: dict[str, str] | None = None,
    store: str | Store | None = None,
) -> Assessment:
    """Record feedback (a judgement of the trace or one span), searchable as
    ``feedback.<name>``."""
    return _log(
        AssessmentKind.FEEDBACK,
        trace_id,
        name,
        value,
        rationale,
        source_type,
        source_id,
        span_id,
        metadata,
        store,
    )


def log_expectation(
    trace_id: str,
    name: str,
    value: Any,
    *,
    rationale: str | None = None,
    source_type: str | AssessmentSource = AssessmentSource.HUMAN,
    source_id: str | None = None,
    span_id: str | None = None,
    metadata: dict[str, str] | None = None,
    store: str | Store | None = None,
) -> Assessment:
    """Record the expected output (ground truth), searchable as ``expectation.<name>``."""
    return _log(
        AssessmentKind.EXPECTATION,
        trace_id,
        name,
        value,
        rationale,
        source_type,
        source_id,
        span_id,
        metadata,
        store,
    )
