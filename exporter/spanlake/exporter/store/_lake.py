"""The store logic shared by the Parquet and Delta stores, over a small table backend.

Layout and backend interface: :mod:`._lake_backend`. Spans are the source of truth; the
``traces`` table is a materialised roll-up. Every write appends its new spans, then
re-derives the trace row of each trace it touched from *all* the trace's stored spans
(:func:`~spanlake.exporter.rollup.rollup`) and appends it. Several rows of one trace may
exist; readers keep the one built from the most spans + tag overrides (:mod:`._lake_dedupe`).
That is always the complete one: every writer re-reads the table *after* its own spans are
in, so the writer whose file landed last saw every span of the trace. Compaction keeps only
the winning rows.

To re-derive a trace without rescanning the lake, a writer keeps what it knows of recent
span files and of traces still waiting for their root (:mod:`._lake_spans`). The span file
is encoded and committed on an I/O thread while the roll-up runs.

Reads: the winning trace rows are kept in memory as one Arrow table (:mod:`._lake_traces`)
and searched with :mod:`._query_arrow`; writers merge small trace-row files as they go so
opening a store stays fast. Span-level filters and ``get_trace`` read the span files
(``compact`` sorts them by trace id so lookups touch one row group).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from spanlake.exporter.errors import FilterError, NotFoundError, StoreError, TransientStoreError
from spanlake.exporter.records import (
    Assessment,
    Experiment,
    SpanRecord,
    Trace,
    TraceInfo,
    TracePage,
)
from spanlake.exporter.rollup import rollup
from spanlake.exporter.store import _arrow
from spanlake.exporter.store._lake_backend import (
    ASSESSMENTS,
    EXPERIMENTS,
    PARTITIONED,
    SCHEMAS,
    SPANS,
    TAG_OVERRIDES,
    TRACES,
    LakeBackend,
    new_files,
    subset,
)
from spanlake.exporter.store._lake_dedupe import dedupe
from spanlake.exporter.store._lake_spans import SpanCache
from spanlake.exporter.store._lake_traces import TraceRows
from spanlake.exporter.store._query_arrow import Evaluator, order_indices
from spanlake.exporter.store.base import DEFAULT_MAX_RESULTS, Store, stamp_assessment
from spanlake.exporter.store.filter import parse_filter, parse_order_by
from spanlake.exporter.store.metrics import MetricsQuery, TraceMetrics

__all__ = [
    "ASSESSMENTS",
    "EXPERIMENTS",
    "PARTITIONED",
    "SCHEMAS",
    "SPANS",
    "TAG_OVERRIDES",
    "TRACES",
    "LakeBackend",
    "LakeStore",
    "batch_txn_id",
    "experiment_id_for",
]


_LOG = logging.getLogger(__name__)
#: Stale traces re-derived per pass when healing (each pass scans the span files once).
HEAL_CHUNK = 1000
#: ``compact`` deletes temporary files untouched this long (a live write takes seconds).
LEFTOVER_SECONDS = 600.0


def batch_txn_id(spans: Sequence[SpanRecord]) -> str:
    """Idempotency key of a batch: the same spans give the same id, whatever their order."""
    keys = sorted({f"{s.trace_id}:{s.span_id}" for s in spans})
    return "spanlake-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(offset)
        return int(offset)
    except Exception as exc:
        raise FilterError(f"Invalid page_token {token!r}", token=token) from exc


def experiment_id_for(name: str) -> str:
    """Stable id from the name, so two processes creating one experiment agree."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class LakeStore(Store):
    """:class:`Store` over a :class:`LakeBackend` (see the module docstring for the design)."""

    def __init__(self, backend: LakeBackend, uri: str) -> None:
        self.backend = backend
        self.uri = uri
        self._lock = threading.RLock()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanlake-lake-io")
        self._closed = False
        self._spans = SpanCache(backend)
        self._traces = TraceRows(backend)
        # small tables, kept whole in memory
        self._small_seen: dict[str, set[str]] = {
            ASSESSMENTS: set(),
            TAG_OVERRIDES: set(),
            EXPERIMENTS: set(),
        }
        self._assessments: dict[str, tuple[int, Assessment]] = {}
        self._overrides: dict[str, list[tuple[int, str, str | None]]] = {}
        self._experiments: dict[str, Experiment] = {}
        self._healed: set[str] = set()  # span files whose traces have a trace row
        self._heal_persisted = False

    # -- helpers -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.uri} is closed")

    # -- experiments ---------------------------------------------------------------------
    def _refresh_small(self, table: str) -> None:
        new = new_files(self.backend, table, self._small_seen[table])
        if new is None:
            return
        rows = new.to_table()
        if table == EXPERIMENTS:
            for exp in _arrow.table_to_experiments(rows):
                old = self._experiments.get(exp.name)
                if old is None or exp.created_time_ms < old.created_time_ms:
                    self._experiments[exp.name] = exp
        elif table == ASSESSMENTS:
            for logged, a in _arrow.table_to_assessments(rows):
                old_a = self._assessments.get(a.assessment_id)
                if old_a is None or logged >= old_a[0]:
                    self._assessments[a.assessment_id] = (logged, a)
        else:
            for r in rows.to_pylist():
                self._overrides.setdefault(r["trace_id"], []).append(
                    (r["time_ns"], r["key"], r["value"])
                )

    def _ensure_experiments(self, names: Iterable[str]) -> None:
        missing = [n for n in set(names) if n not in self._experiments]
        if not missing:
            return
        self._refresh_small(EXPERIMENTS)
        created = [
            Experiment(experiment_id_for(n), n, int(time.time() * 1000))
            for n in sorted(missing)
            if n not in self._experiments
        ]
        if created:
            self.backend.append(EXPERIMENTS, _arrow.experiments_to_table(created))
            for exp in created:
                self._experiments.setdefault(exp.name, exp)

    def get_or_create_experiment(self, name: str) -> Experiment:
        with self._lock:
            self._check_open()
            self._guard(lambda: self._ensure_experiments([name]))
            self._refresh_small(EXPERIMENTS)
            return self._experiments[name]

    def list_experiments(self) -> list[Experiment]:
        with self._lock:
            self._check_open()
            self._guard(lambda: self._refresh_small(EXPERIMENTS))
            return sorted(self._experiments.values(), key=lambda e: (e.created_time_ms, e.name))

    # -- trace rows ----------------------------------------------------------------------
    def _tag_overrides(self, trace_id: str) -> tuple[dict[str, str | None], int]:
        entries = self._overrides.get(trace_id)
        if not entries:
            return {}, 0
        log = sorted(entries, key=lambda e: (e[0], e[1]))
        return {key: value for _, key, value in log}, len(log)

    def _rollups(self, trace_ids: Iterable[str]) -> dict[str, tuple[int, int, TraceInfo]]:
        """trace id -> (spans rolled up, tag overrides applied, record)."""
        out: dict[str, tuple[int, int, TraceInfo]] = {}
        held = self._spans.spans
        for trace_id in sorted(trace_ids):
            spans = held(trace_id)
            if spans:
                overrides, n_overrides = self._tag_overrides(trace_id)
                info = rollup(list(spans.values()), tag_overrides=overrides)
                out[trace_id] = (len(spans), n_overrides, info)
        return out

    def _write_rollups(self, rolled: dict[str, tuple[int, int, TraceInfo]]) -> None:
        if not rolled:
            return
        values = list(rolled.values())
        rows = _arrow.traces_to_table(
            [info for _, _, info in values], [n for _, n, _ in values], time.time_ns()
        )
        paths = self.backend.append(TRACES, rows)
        self._traces.add_own(rows, paths, {t: (c, n) for t, (c, n, _) in rolled.items()})

    def _reroll(self, trace_ids: Iterable[str]) -> None:
        self._write_rollups(self._rollups(trace_ids))

    # -- healing what a crash left ---------------------------------------------------------
    def _heal(self) -> int:
        """Roll up traces whose spans are on disk without a trace row counting them all (a
        writer killed between its span file and its trace rows); returns how many.

        The first call in a process (the first read or write) looks at every span file and
        writes the missing trace rows, so every reader and engine sees them from then on;
        on a store it cannot write, and on later reads (span files that appeared since,
        maybe a live writer's whose rows are on their way), the rows are kept in memory
        only, where a complete row written later still wins."""
        files = self.backend.files(SPANS)
        new = [f for f in files if f not in self._healed]
        if not new:
            return 0
        dataset = self.backend.dataset(SPANS, files)
        if dataset is None:
            return 0
        if len(new) == len(files):
            keys = dataset.to_table(columns=["trace_id", "span_id"])
        else:
            fresh = self.backend.dataset(SPANS, new)
            assert fresh is not None
            ids = pc.unique(fresh.to_table(columns=["trace_id"]).column("trace_id"))
            keys = dataset.to_table(
                columns=["trace_id", "span_id"], filter=ds.field("trace_id").isin(ids)
            )
        on_disk = keys.group_by("trace_id").aggregate([("span_id", "count_distinct")])
        self._traces.refresh()
        stale = self._traces.short_of(
            on_disk.column("trace_id"), on_disk.column("span_id_count_distinct")
        )
        persist = not self._heal_persisted
        self._heal_persisted = True
        self._healed.update(files)
        for i in range(0, len(stale), HEAL_CHUNK):
            chunk = stale[i : i + HEAL_CHUNK]
            self._spans.forget(chunk)
            self._spans.read(files, set(chunk))
            rolled = self._rollups(chunk)
            if persist:
                try:
                    self._write_rollups(rolled)
                except Exception as exc:  # read-only lake, full disk: this process still sees them
                    _LOG.warning("could not store repaired trace rows in %s: %s", self.uri, exc)
                    persist = False
            if not persist and rolled:
                values = list(rolled.values())
                self._traces.add_unstored(
                    _arrow.traces_to_table(
                        [info for _, _, info in values], [n for _, n, _ in values], time.time_ns()
                    )
                )
            self._spans.shrink(chunk)
        if stale:
            _LOG.info("rolled up %d trace(s) a crashed writer left without trace rows", len(stale))
        return len(stale)

    # -- writes --------------------------------------------------------------------------
    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except (StoreError, NotFoundError, FilterError):
            raise
        except (OSError, pa.ArrowException) as exc:
            raise TransientStoreError(f"{self.uri}: {exc}") from exc

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        if not spans:
            return 0
        with self._lock:
            self._check_open()
            result: int = self._guard(lambda: self._write_spans(spans))
            return result

    def _write_spans(self, spans: Sequence[SpanRecord]) -> int:
        keys = [(s.trace_id, s.span_id) for s in spans]
        batch = dict(zip(keys, spans, strict=True))
        if len(batch) != len(spans):  # a span repeated within the batch: the first wins
            batch = {}
            for key, s in zip(keys, spans, strict=True):
                batch.setdefault(key, s)
        touched = {trace_id for trace_id, _ in batch}
        cache, traces = self._spans, self._traces
        if not self._heal_persisted:
            self._heal()
        self._ensure_experiments({s.experiment for s in batch.values()})
        cache.refresh()
        traces.refresh()
        cache.load(touched, traces.best_count)
        self._refresh_small(TAG_OVERRIDES)
        held = {t: cache.spans(t) for t in touched}
        new = [s for (t, sid), s in batch.items() if sid not in held[t]]
        with_new = {s.trace_id for s in new}
        rolled: dict[str, tuple[int, int, TraceInfo]] = {}
        if new:
            table = _arrow.spans_to_table(new)
            # The span file is encoded, fsynced and committed on a worker thread (I/O and
            # Arrow release the GIL) while the touched traces are rolled up here.
            txn_id = batch_txn_id(spans)
            future = self._submit_io(table, txn_id)
            cache.add(new)
            try:
                rolled = self._rollups(with_new)
                paths = (
                    future.result()
                    if future is not None
                    else self.backend.append(SPANS, table, txn_id=txn_id)
                )
            except BaseException:
                cache.discard(new)
                if future is not None:
                    wait([future])  # never leave the backend busy behind the caller's back
                raise
            cache.register_own_files(new, paths)
            self._healed.update(paths or ())  # our own trace rows follow below
        # Look again: spans other processes added meanwhile must be in our roll-up.
        if cache.refresh():
            cache.load(touched, traces.best_count)
        traces.refresh()
        stale = {
            t
            for t in touched
            if (t in with_new and rolled.get(t, (0,))[0] != len(cache.spans(t)))
            or (t not in with_new and traces.best_count(t) != len(cache.spans(t)))
        }
        rolled.update(self._rollups(stale))
        self._write_rollups(rolled)
        cache.shrink(touched)
        traces.maybe_merge()
        return len(new)

    def _submit_io(self, table: pa.Table, txn_id: str) -> Future[list[str] | None] | None:
        """The span file's append on the I/O thread, or None to append inline: once the
        interpreter is shutting down (``atexit``, where the SDK flushes its last batch)
        ``concurrent.futures`` refuses new work, and those spans must still be written."""
        try:
            return self._io.submit(self.backend.append, SPANS, table, txn_id=txn_id)
        except RuntimeError:
            return None

    # -- tags and assessments ------------------------------------------------------------
    def _require_trace(self, trace_id: str) -> None:
        self._traces.table()  # readers: heal into the materialised rows
        self._heal()
        self._traces.refresh()
        ids = self._traces.table().column("trace_id")
        if not pc.any(pc.equal(ids, trace_id)).as_py():
            raise NotFoundError(f"trace {trace_id!r} not found in {self.uri}")

    def _set_tag_override(self, trace_id: str, key: str, value: str | None) -> None:
        with self._lock:
            self._check_open()

            def run() -> None:
                self._require_trace(trace_id)
                row = {
                    "trace_id": [trace_id],
                    "key": [key],
                    "value": [value],
                    "time_ns": [time.time_ns()],
                }
                self.backend.append(
                    TAG_OVERRIDES, pa.Table.from_pydict(row, schema=_arrow.TAG_OVERRIDES_SCHEMA)
                )
                self._refresh_small(TAG_OVERRIDES)
                self._spans.refresh()
                self._spans.load([trace_id], self._traces.best_count)
                self._reroll([trace_id])
                self._spans.shrink([trace_id])

            self._guard(run)

    def log_assessment(self, assessment: Assessment) -> Assessment:
        a = assessment
        stamp_assessment(a)
        with self._lock:
            self._check_open()

            def run() -> None:
                self._require_trace(a.trace_id)
                self.backend.append(ASSESSMENTS, _arrow.assessments_to_table([a], time.time_ns()))
                self._refresh_small(ASSESSMENTS)

            self._guard(run)
        return a

    # -- reads ---------------------------------------------------------------------------
    def _read_spans(self, columns: list[str]) -> pa.Table:
        dataset = self.backend.dataset(SPANS)
        if dataset is None:
            return _arrow.SPANS_SCHEMA.empty_table().select(["trace_id", *columns])
        return dataset.to_table(columns=["trace_id", *columns])

    def _assessment_list(self) -> list[Assessment]:
        self._refresh_small(ASSESSMENTS)
        return [a for _, a in self._assessments.values()]

    def search_traces(
        self,
        experiment_names: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str | None = None,
    ) -> TracePage:
        node = parse_filter(filter_string)
        order = parse_order_by(list(order_by) if order_by else None)
        offset = _decode_token(page_token)
        if max_results < 1:
            raise FilterError(f"max_results must be positive, got {max_results}")
        if experiment_names is not None and not list(experiment_names):
            return TracePage([])
        with self._lock:
            self._check_open()
            result: TracePage = self._guard(
                lambda: self._search(experiment_names, node, order, max_results, offset)
            )
            return result

    def _search(
        self,
        experiment_names: Sequence[str] | None,
        node: Any,
        order: tuple[tuple[str, bool], ...],
        max_results: int,
        offset: int,
    ) -> TracePage:
        self._traces.table()
        self._heal()
        self._traces.refresh()
        view = self._traces.view()
        table = view.table
        mask = None
        if experiment_names is not None:
            names = pa.array(list(experiment_names), pa.string())
            mask = pc.is_in(table.column("experiment"), value_set=names)
        if node is not None and table.num_rows:
            evaluator = Evaluator(view, self._read_spans, self._assessment_list)
            hit = evaluator.mask(node)
            mask = hit if mask is None else pc.and_(mask, hit)
        # Order a narrow table of the candidates; take full rows only for the page.
        keys = table.select(list(dict.fromkeys(["trace_id", *(f for f, _ in order)])))
        candidates = None
        if mask is not None:
            candidates = pc.indices_nonzero(mask)
            keys = keys.take(candidates)
        top = order_indices(keys, order, offset + max_results + 1)
        rows = top if candidates is None else candidates.take(top)
        page = table.take(rows[offset : offset + max_results + 1])
        infos = _arrow.table_to_infos(page.slice(0, max_results))
        token = _encode_token(offset + max_results) if page.num_rows > max_results else None
        return TracePage(infos, token)

    def trace_metrics(self, query: MetricsQuery) -> TraceMetrics:
        from spanlake.exporter.store._analytics_arrow import arrow_trace_metrics

        node = parse_filter(query.filter_string)
        if query.experiment_names is not None and not query.experiment_names:
            return TraceMetrics.from_partials(query, {})

        def run() -> TraceMetrics:
            self._traces.refresh()
            view = self._traces.view()
            mask = None
            if query.experiment_names is not None:
                names = pa.array(list(query.experiment_names), pa.string())
                mask = pc.is_in(view.table.column("experiment"), value_set=names)
            if node is not None and view.table.num_rows:
                hit = Evaluator(view, self._read_spans, self._assessment_list).mask(node)
                mask = hit if mask is None else pc.and_(mask, hit)
            partials = arrow_trace_metrics(view.table, mask, query, self._read_spans)
            return TraceMetrics.from_partials(query, partials)

        with self._lock:
            self._check_open()
            result: TraceMetrics = self._guard(run)
            return result

    def get_trace(self, trace_id: str) -> Trace:
        trace_id = trace_id.lower()
        with self._lock:
            self._check_open()
            result: Trace = self._guard(lambda: self._get_trace(trace_id))
            return result

    def _get_trace(self, trace_id: str) -> Trace:
        self._require_trace(trace_id)
        table = self._traces.table()
        row = table.filter(pc.equal(table.column("trace_id"), trace_id))
        info = _arrow.table_to_infos(row)[0]
        spans: dict[str, SpanRecord] = {}
        dataset = self.backend.dataset(SPANS)
        if dataset is not None:
            # Two passes: find the files holding the trace from the trace_id column alone,
            # then read whole rows (2 KB of JSON each) from those files only.
            match = ds.field("trace_id") == trace_id
            scanner = dataset.scanner(
                columns=["trace_id"], filter=match & (ds.field("experiment") == info.experiment)
            )
            files = sorted(
                {t.fragment.path for t in scanner.scan_batches() if t.record_batch.num_rows}
            )
            part = self.backend.dataset(SPANS, files) if files else None
            if part is not None:
                for span in _arrow.table_to_spans(part.to_table(filter=match)):
                    spans.setdefault(span.span_id, span)
        ordered = sorted(spans.values(), key=lambda s: (s.start_time_ns, s.span_id))
        assessments = sorted(
            (a for a in self._assessment_list() if a.trace_id == trace_id),
            key=lambda a: (a.time_ms, a.assessment_id),
        )
        return Trace(info, ordered, assessments)

    def iter_spans(self, batch_size: int = 10_000) -> Iterator[list[SpanRecord]]:
        with self._lock:
            dataset = self.backend.dataset(SPANS)
        if dataset is None:
            return
        for batch in dataset.to_batches(batch_size=batch_size):
            yield _arrow.table_to_spans(pa.Table.from_batches([batch]))

    def iter_assessments(self) -> Iterator[Assessment]:
        with self._lock:
            items = sorted(self._assessment_list(), key=lambda a: (a.time_ms, a.assessment_id))
        yield from items

    def count_spans(self) -> int:
        """Span rows stored (replays removed by compaction may still count twice)."""
        dataset = self.backend.dataset(SPANS)
        return 0 if dataset is None else int(dataset.count_rows())

    # -- maintenance ---------------------------------------------------------------------
    def compact(self) -> dict[str, int]:
        """Merge small files per partition, drop replayed spans and superseded trace rows.
        Safe while writers append: only files read here are replaced."""
        stats = {"files_before": 0, "files_after": 0}
        with self._lock:
            self._check_open()
            for table in (SPANS, TRACES, ASSESSMENTS, TAG_OVERRIDES, EXPERIMENTS):
                dataset = self.backend.dataset(table)
                if dataset is None:
                    continue
                fragments = list(dataset.get_fragments())
                stats["files_before"] += len(fragments)
                groups: dict[tuple[str, ...], list[str]] = {}
                for fragment in fragments:
                    keys = ds.get_partition_keys(fragment.partition_expression)
                    group = tuple(str(keys.get(c)) for c in _arrow.PARTITION_COLUMNS)
                    groups.setdefault(group, []).append(fragment.path)
                for paths in groups.values():
                    part = subset(dataset, paths)
                    data = dedupe(table, part.to_table())
                    if len(paths) > 1 or data.num_rows < part.count_rows():
                        self.backend.replace(table, paths, data)
            self.backend.optimize()
            stats["tmp_removed"] = len(self.backend.remove_leftovers(LEFTOVER_SECONDS))
            stats["traces_repaired"] = self._repair()
            for table in (SPANS, TRACES, ASSESSMENTS, TAG_OVERRIDES, EXPERIMENTS):
                after = self.backend.dataset(table)
                stats["files_after"] += 0 if after is None else len(after.files)
        return stats

    def _repair(self) -> int:
        """Re-derive trace rows that disagree with the span rows (a writer that died
        between writing its spans and their trace rows); returns how many."""
        self._spans.refresh()
        self._traces.refresh()
        dataset = self.backend.dataset(SPANS)
        if dataset is None:
            return 0
        keys = dataset.to_table(columns=["trace_id", "span_id"])
        counts = keys.group_by("trace_id").aggregate([("span_id", "count_distinct")])
        stale = [
            trace_id
            for trace_id, count in zip(
                counts.column("trace_id").to_pylist(),
                counts.column("span_id_count_distinct").to_pylist(),
                strict=True,
            )
            if self._traces.best_count(trace_id) != count
        ]
        for i in range(0, len(stale), 1000):
            chunk = stale[i : i + 1000]
            self._spans.forget(chunk)
            self._spans.read(list(dataset.files), set(chunk))
            self._reroll(chunk)
            self._spans.shrink(chunk)
        return len(stale)

    def vacuum(self, retention_hours: float, *, dry_run: bool = False) -> list[str]:
        with self._lock:
            self._check_open()
            return self.backend.vacuum(retention_hours, dry_run=dry_run)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._io.shutdown(wait=True)
                self.backend.close()
