"""The one store interface every backend implements (SQLite, Parquet, Delta).

Contract shared by all stores (one parametrized test suite proves it):

- ``write_spans`` is idempotent on (trace_id, span_id): a replayed span is ignored. It
  returns only when the spans are durable (committed / renamed into place / Delta commit);
  it raises :class:`~spanlake.exporter.errors.TransientStoreError` for a retryable fault and
  commits nothing of that call.
- Trace records are *derived* from span rows (:func:`spanlake.exporter.rollup.rollup`), so
  they are identical whatever order or batches the spans arrived in.
- Queries take the same filter AST (:mod:`spanlake.exporter.store.filter`) and return the
  same results on every store.
- Experiments are created on first write (by name) and listed by ``list_experiments``.
- Stores are thread-safe; several processes may write one store at once.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from spanlake.exporter.records import (
    Assessment,
    Experiment,
    SpanRecord,
    Trace,
    TracePage,
)
from spanlake.exporter.store.metrics import MetricsQuery, TraceMetrics

DEFAULT_MAX_RESULTS = 100


def stamp_assessment(assessment: Assessment) -> Assessment:
    """Fill the id and time of a new assessment (every store's ``log_assessment`` does)."""
    if not assessment.assessment_id:
        assessment.assessment_id = uuid.uuid4().hex
    if not assessment.time_ms:
        assessment.time_ms = int(time.time() * 1000)
    return assessment


class Store(ABC):
    """Abstract experiment store."""

    #: The URI the store was opened with (for messages and ``spanlake store copy``).
    uri: str

    @abstractmethod
    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        """Store spans durably, ignoring ones already stored; returns how many were new."""

    @abstractmethod
    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment of that name, created if missing."""

    @abstractmethod
    def list_experiments(self) -> list[Experiment]:
        """All experiments, oldest first."""

    @abstractmethod
    def search_traces(
        self,
        experiment_names: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str | None = None,
    ) -> TracePage:
        """Trace records matching the filter (all experiments when ``experiment_names`` is
        None), ordered (default newest first, trace_id breaking ties), one page at a time.
        Raises FilterError for a malformed filter or order_by."""

    @abstractmethod
    def get_trace(self, trace_id: str) -> Trace:
        """The trace with all spans (by start time) and assessments; NotFoundError if absent."""

    @abstractmethod
    def log_assessment(self, assessment: Assessment) -> Assessment:
        """Store feedback/expectation; fills ``assessment_id`` and ``time_ms`` when empty.
        NotFoundError when the trace is unknown."""

    def trace_metrics(self, query: MetricsQuery) -> TraceMetrics:
        """Counts, error rate, latency percentiles, tokens and cost per time bucket and
        group, computed inside the store (semantics: :mod:`.metrics`). Raises FilterError
        for a malformed filter."""
        raise NotImplementedError(f"{type(self).__name__} has no trace analytics")

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        """Set a mutable tag on a trace (overrides a tag of the same key from its spans).
        NotFoundError when the trace is unknown."""
        self._set_tag_override(trace_id, key, str(value))

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        """Remove a tag from a trace (also hides a tag of that key carried by its spans)."""
        self._set_tag_override(trace_id, key, None)

    def _set_tag_override(self, trace_id: str, key: str, value: str | None) -> None:
        """Record a tag override (None deletes) and re-roll the trace; stores implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not support trace tags")

    def iter_spans(self, batch_size: int = 10_000) -> Iterator[list[SpanRecord]]:
        """All spans of the store in batches (for ``spanlake store copy``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be copied from yet")

    def iter_assessments(self) -> Iterator[Assessment]:
        """All assessments of the store (for ``spanlake store copy``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be copied from yet")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; the store is unusable afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
