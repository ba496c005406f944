"""The store logic shared by the Parquet and Delta stores, over a small table backend.

Layout: five append-only tables under the store root: ``spans`` and ``traces`` (partitioned
by ``experiment`` and UTC ``date``), ``assessments``, ``tag_overrides``, ``experiments``.

Spans are the source of truth; the ``traces`` table is a materialised roll-up. Every write
appends its new spans, then re-derives the trace row of each trace it touched from *all* the
trace's stored spans (:func:`~spanlake.exporter.rollup.rollup`) and appends it. Several rows
of one trace may exist; readers keep the one built from the most spans + tag overrides. That
is always the complete one: every writer re-reads the table *after* its own spans are in, so
the writer whose file landed last saw every span of the trace. Compaction keeps only the
winning rows.

To re-derive a trace without rescanning the lake, a writer keeps the light spans (no
attributes/events) of traces still waiting for their root (bounded LRU) and an index of the
trace ids of span files that appeared in the last minutes; a trace touched again is re-read
from those files, and an older one whose stored row counts more spans than we hold from all
files. The span file is encoded and committed on an I/O thread while the roll-up runs.

Reads: the winning trace rows are kept in memory as one Arrow table (merged vectorised as new
trace-row files appear) and searched with :mod:`._query_arrow`; writers merge small trace-row
files as they go so opening a store stays fast. Span-level filters and ``get_trace`` read the
span files (``compact`` sorts them by trace id so lookups touch one row group).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
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
from spanlake.exporter.store._query_arrow import Evaluator, TraceView, order_indices
from spanlake.exporter.store.base import DEFAULT_MAX_RESULTS, Store, stamp_assessment
from spanlake.exporter.store.filter import parse_filter, parse_order_by

_LOG = logging.getLogger(__name__)

SPANS, TRACES, ASSESSMENTS, TAG_OVERRIDES, EXPERIMENTS = (
    "spans",
    "traces",
    "assessments",
    "tag_overrides",
    "experiments",
)
SCHEMAS: dict[str, pa.Schema] = {
    SPANS: _arrow.SPANS_SCHEMA,
    TRACES: _arrow.TRACES_SCHEMA,
    ASSESSMENTS: _arrow.ASSESSMENTS_SCHEMA,
    TAG_OVERRIDES: _arrow.TAG_OVERRIDES_SCHEMA,
    EXPERIMENTS: _arrow.EXPERIMENTS_SCHEMA,
}
PARTITIONED = frozenset({SPANS, TRACES})

#: Light spans kept for re-deriving trace rows (~300 bytes each).
CACHE_MAX_SPANS = 200_000
#: How long a span file's trace ids are remembered: a writer finishes its trace rows well
#: within this, after which the trace rows themselves say how many spans a trace has.
RECENT_FILE_SECONDS = 120.0
RECENT_FILES_MAX = 5_000
RECENT_IDS_MAX = 500_000
#: Trace-row files: a partition's small files (< MERGE_MAX_ROWS rows) are merged once there
#: are MERGE_MIN_FILES of them, checked every MERGE_CHECK_EVERY writes.
MERGE_CHECK_EVERY = 16
MERGE_MIN_FILES = 16
MERGE_MAX_ROWS = 50_000
#: Trace -> span count entries a writer keeps (to notice an old trace touched again).
BEST_MAX = 2_000_000


class LakeBackend(ABC):
    """Where the tables' files live and how they are committed (Parquet dir, Delta log)."""

    #: Human-readable root (path or URL) for messages.
    location: str

    @abstractmethod
    def files(self, table: str) -> list[str]:
        """Paths of the table's current data files (cheap: no file is opened)."""

    @abstractmethod
    def dataset(
        self, table: str, paths: Sequence[str] | None = None
    ) -> ds.FileSystemDataset | None:
        """The table's current files, or just ``paths`` of them, with partition columns;
        None if there is no file."""

    @abstractmethod
    def append(self, table: str, data: pa.Table, *, txn_id: str | None = None) -> list[str] | None:
        """Add rows atomically and durably. ``txn_id`` makes the append idempotent: an id
        already committed is skipped. Returns the new files' paths when known (None when
        the backend cannot tell). Raises TransientStoreError on a retryable failure."""

    @abstractmethod
    def replace(self, table: str, remove: Sequence[str], data: pa.Table | None) -> list[str] | None:
        """Atomically swap files ``remove`` for ``data`` (compaction); returns the new
        files' paths when known."""

    def merge(
        self,
        table: str,
        paths: Sequence[str],
        partition: Mapping[str, str],
        rows: Callable[[], pa.Table],
    ) -> list[str] | None:
        """Merge small files of one partition (``rows()`` reads them, deduplicated);
        returns the new files' paths when they hold only rows of ``paths``."""
        return self.replace(table, paths, rows())

    @abstractmethod
    def vacuum(self, retention_hours: float, *, dry_run: bool) -> list[str]:
        """Delete unreferenced files older than the retention; returns them."""

    def optimize(self) -> None:  # noqa: B027 - optional hook
        """Backend-specific maintenance after :meth:`LakeStore.compact`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def subset(dataset: ds.FileSystemDataset, paths: Iterable[str]) -> ds.FileSystemDataset:
    """The dataset restricted to some files (partition columns preserved)."""
    wanted = set(paths)
    fragments = [f for f in dataset.get_fragments() if f.path in wanted]
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)


def batch_txn_id(spans: Sequence[SpanRecord]) -> str:
    """Idempotency key of a batch: the same spans give the same id, whatever their order."""
    keys = sorted({f"{s.trace_id}:{s.span_id}" for s in spans})
    return "spanlake-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


class _Known:
    """What this process knows of one trace: its spans and the files they came from."""

    __slots__ = ("files", "spans")

    def __init__(self) -> None:
        self.spans: dict[str, SpanRecord] = {}
        self.files: set[str] = set()


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
        # spans: files whose trace ids we read, recent files' trace ids, light-span LRU
        self._span_files_seen: set[str] = set()
        self._recent: deque[tuple[float, str, frozenset[str]]] = deque()
        # trace id -> recent files holding it; tuples, not sets: one per trace, and the
        # garbage collector stops scanning tuples of strings (sets it scans every time)
        self._recent_index: dict[str, tuple[str, ...]] = {}
        self._recent_ids = 0
        self._writes_since_merge = 0
        self._file_rows: dict[str, int] = {}  # trace-row file -> rows
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._known_spans = 0
        # traces: row chunks + the winning row per trace; materialised lazily for queries
        self._trace_files_seen: set[str] = set()
        self._trace_pending: list[pa.Table] = []  # rows not merged into the read view
        self._materialised: pa.Table | None = None  # the winning row per trace
        self._view: TraceView | None = None
        self._count_pending: list[pa.Table] = []  # rows not yet in _best
        self._best: dict[str, tuple[tuple[int, int], int]] = {}  # -> (basis, span_count)
        # small tables, kept whole in memory
        self._small_seen: dict[str, set[str]] = {
            ASSESSMENTS: set(),
            TAG_OVERRIDES: set(),
            EXPERIMENTS: set(),
        }
        self._assessments: dict[str, tuple[int, Assessment]] = {}
        self._overrides: dict[str, list[tuple[int, str, str | None]]] = {}
        self._experiments: dict[str, Experiment] = {}

    # -- helpers -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.uri} is closed")

    def _new_files(self, table: str, seen: set[str]) -> ds.FileSystemDataset | None:
        new = [f for f in self.backend.files(table) if f not in seen]
        if not new:
            return None
        dataset = self.backend.dataset(table, new)
        seen.update(new)
        return dataset

    # -- experiments ---------------------------------------------------------------------
    def _refresh_small(self, table: str) -> None:
        new = self._new_files(table, self._small_seen[table])
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

    # -- span bookkeeping ----------------------------------------------------------------
    def _refresh_span_files(self) -> bool:
        """Index the trace ids of span files that appeared since we last looked (True if
        any did). A file holding only spans we already cache (our own) counts as loaded."""
        new = self._new_files(SPANS, self._span_files_seen)
        now = time.monotonic()
        if new is not None:
            for fragment in new.get_fragments():
                keys = fragment.to_table(columns=["trace_id", "span_id"])
                self._index_file(fragment.path, keys, now)
        while self._recent and (
            now - self._recent[0][0] > RECENT_FILE_SECONDS
            or len(self._recent) > RECENT_FILES_MAX
            or self._recent_ids > RECENT_IDS_MAX
        ):
            _, path, ids = self._recent.popleft()
            self._recent_ids -= len(ids)
            index = self._recent_index
            for trace_id in ids:
                paths = index.get(trace_id)
                if paths is not None:
                    if paths == (path,):
                        del index[trace_id]
                    else:
                        index[trace_id] = tuple(p for p in paths if p != path)
        return new is not None

    def _remember(self, path: str, ids: frozenset[str], now: float) -> None:
        """Add a span file's trace ids to the recent-file index."""
        self._recent.append((now, path, ids))
        self._recent_ids += len(ids)
        index = self._recent_index
        single = (path,)
        for trace_id in ids:
            paths = index.get(trace_id)
            if paths is None:
                index[trace_id] = single
            elif path not in paths:
                index[trace_id] = (*paths, path)

    def _index_file(self, path: str, keys: pa.Table, now: float) -> None:
        trace_ids = keys.column("trace_id").to_pylist()
        ids = frozenset(trace_ids)
        self._remember(path, ids, now)
        cached = [t for t in ids if t in self._known]
        if not cached:
            return
        missing: set[str] = set()
        for trace_id, span_id in zip(trace_ids, keys.column("span_id").to_pylist(), strict=True):
            known = self._known.get(trace_id)
            if known is not None and span_id not in known.spans:
                missing.add(trace_id)
        for trace_id in cached:
            if trace_id not in missing:
                self._known[trace_id].files.add(path)

    def _load(self, trace_ids: Iterable[str]) -> None:
        """Make the cache hold every stored span of these traces: read the recent files
        that hold them, or scan everything for an old trace whose stored row counts more
        spans than we hold."""
        wanted: dict[str, set[str]] = {}  # file -> traces to read from it
        full_scan: list[str] = []
        for trace_id in trace_ids:
            known = self._known.get(trace_id)
            if known is None:
                known = self._known[trace_id] = _Known()
            else:
                self._known.move_to_end(trace_id)
            for path in self._recent_index.get(trace_id, ()):
                if path not in known.files:
                    wanted.setdefault(path, set()).add(trace_id)
            count = self._best_count(trace_id)
            if count is not None and count > len(known.spans):
                full_scan.append(trace_id)
        if not wanted and not full_scan:
            return
        by_traces: dict[frozenset[str], list[str]] = {}
        for path, traces in wanted.items():
            by_traces.setdefault(frozenset(traces), []).append(path)
        for group, paths in by_traces.items():
            self._read_into_cache(paths, set(group))
        full_scan = [t for t in full_scan if (self._best_count(t) or 0) > len(self._known[t].spans)]
        if full_scan:
            self._read_into_cache(self.backend.files(SPANS), set(full_scan))

    def _read_into_cache(self, paths: list[str], ids: set[str]) -> None:
        part = self.backend.dataset(SPANS, paths)
        if part is None:
            return
        rows = part.to_table(
            columns=_arrow.LIGHT_SPAN_COLUMNS,
            filter=ds.field("trace_id").isin(sorted(ids)),
        )
        for span in _arrow.table_to_spans(rows, light=True):
            known = self._known[span.trace_id]
            if span.span_id not in known.spans:
                known.spans[span.span_id] = span
                self._known_spans += 1
        for trace_id in ids:
            self._known[trace_id].files.update(paths)

    def _register_own_files(self, spans: Sequence[SpanRecord], paths: list[str] | None) -> None:
        """Index the files we just wrote without reading them back (when the backend says
        which they are; otherwise the next refresh reads their keys)."""
        if not paths:
            return
        ids = frozenset([s.trace_id for s in spans])
        # every span of these files is in the cache: they count as loaded for their traces
        cached = [known for t in ids if (known := self._known.get(t)) is not None]
        now = time.monotonic()
        for path in paths:
            self._span_files_seen.add(path)
            self._remember(path, ids, now)
            for known in cached:
                known.files.add(path)

    def _shrink(self, trace_ids: Iterable[str]) -> None:
        """Keep in memory only what a later batch will need: traces whose root has arrived
        are dropped (later stragglers are found through the file index); the rest keep
        light copies. Then bound the cache (LRU)."""
        for trace_id in trace_ids:
            known = self._known[trace_id]
            if any(s.parent_span_id is None for s in known.spans.values()):
                self._known_spans -= len(known.spans)
                del self._known[trace_id]
            else:
                known.spans = {k: _light(s) for k, s in known.spans.items()}
        while self._known_spans > CACHE_MAX_SPANS and self._known:
            _, dropped = self._known.popitem(last=False)
            self._known_spans -= len(dropped.spans)

    # -- trace rows ----------------------------------------------------------------------
    def _add_trace_rows(self, rows: pa.Table) -> None:
        self._count_pending.append(rows)
        if self._materialised is not None:  # only processes that search keep rows
            self._trace_pending.append(rows)

    def _refresh_traces(self) -> None:
        new = self._new_files(TRACES, self._trace_files_seen)
        if new is not None:
            self._add_trace_rows(new.to_table())

    def _best_count(self, trace_id: str) -> int | None:
        """Spans in the winning row of a trace (None: no row). Writers only: the lookup
        dict is built lazily so that readers never pay for it."""
        self._sync_best()
        found = self._best.get(trace_id)
        return None if found is None else found[1]

    def _sync_best(self) -> None:
        if self._count_pending:
            best = self._best
            for rows in self._count_pending:
                counts = rows.column("span_count").to_pylist()
                overrides = rows.column("tag_override_count").to_pylist()
                computed = rows.column("computed_time_ns").to_pylist()
                for i, tid in enumerate(rows.column("trace_id").to_pylist()):
                    basis = (counts[i] + overrides[i], computed[i])
                    old = best.get(tid)
                    if old is None or basis > old[0]:
                        best[tid] = (basis, counts[i])
            self._count_pending = []
            while len(best) > BEST_MAX:  # oldest first; an evicted trace touched again
                del best[next(iter(best))]  # is rebuilt by `compact`'s repair

    def _traces_table(self) -> pa.Table:
        """The winning row of every trace (merged vectorised, only after a change). The
        first call reads the whole table; writers that never search keep no rows."""
        if self._materialised is None:
            self._refresh_traces()
            current = set(self.backend.files(TRACES)) & self._trace_files_seen
            dataset = self.backend.dataset(TRACES, sorted(current)) if current else None
            self._materialised = (
                winners(dataset.to_table())
                if dataset is not None
                else _arrow.TRACES_SCHEMA.empty_table()
            )
            self._trace_pending = []
            self._view = None
        if self._trace_pending:
            parts = [self._materialised] if self._materialised is not None else []
            self._materialised = winners(pa.concat_tables(parts + self._trace_pending))
            self._trace_pending = []
            self._view = None
        return self._materialised

    def _trace_view(self) -> TraceView:
        table = self._traces_table()
        if self._view is None or self._view.table is not table:
            self._view = TraceView(table)
        return self._view

    def _tag_overrides(self, trace_id: str) -> tuple[dict[str, str | None], int]:
        log = sorted(self._overrides.get(trace_id, ()), key=lambda e: (e[0], e[1]))
        return {key: value for _, key, value in log}, len(log)

    def _rollups(self, trace_ids: Iterable[str]) -> dict[str, tuple[int, int, TraceInfo]]:
        """trace id -> (spans rolled up, tag overrides applied, record)."""
        out: dict[str, tuple[int, int, TraceInfo]] = {}
        for trace_id in sorted(trace_ids):
            spans = list(self._known[trace_id].spans.values())
            if spans:
                overrides, n_overrides = self._tag_overrides(trace_id)
                info = rollup(spans, tag_overrides=overrides)
                out[trace_id] = (len(spans), n_overrides, info)
        return out

    def _write_rollups(self, rolled: dict[str, tuple[int, int, TraceInfo]]) -> None:
        if not rolled:
            return
        values = list(rolled.values())
        rows = _arrow.traces_to_table(
            [info for _, _, info in values], [n for _, n, _ in values], time.time_ns()
        )
        computed = rows.column("computed_time_ns")[0].as_py()
        paths = self.backend.append(TRACES, rows)
        if paths is not None:
            self._trace_files_seen.update(paths)
            if self._materialised is not None:
                self._trace_pending.append(rows)
            # our own rows: update the count index directly, without reading them back
            self._sync_best()
            best = self._best
            for trace_id, (count, n_overrides, _) in rolled.items():
                basis = (count + n_overrides, computed)
                old = best.get(trace_id)
                if old is None or basis > old[0]:
                    best[trace_id] = (basis, count)

    def _reroll(self, trace_ids: Iterable[str]) -> None:
        self._write_rollups(self._rollups(trace_ids))

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
        batch: dict[tuple[str, str], SpanRecord] = {}
        for s in spans:
            batch.setdefault((s.trace_id, s.span_id), s)
        touched = {trace_id for trace_id, _ in batch}
        self._ensure_experiments({s.experiment for s in batch.values()})
        self._refresh_span_files()
        self._refresh_traces()
        self._load(touched)
        self._refresh_small(TAG_OVERRIDES)
        new = [s for (t, sid), s in batch.items() if sid not in self._known[t].spans]
        with_new = {s.trace_id for s in new}
        rolled: dict[str, tuple[int, int, TraceInfo]] = {}
        if new:
            table = _arrow.spans_to_table(new)
            # The span file is encoded, fsynced and committed on a worker thread (I/O and
            # Arrow release the GIL) while the touched traces are rolled up here.
            future = self._io.submit(self.backend.append, SPANS, table, txn_id=batch_txn_id(spans))
            for s in new:
                self._known[s.trace_id].spans[s.span_id] = s
            try:
                rolled = self._rollups(with_new)
                paths = future.result()
            except BaseException:
                for s in new:
                    self._known[s.trace_id].spans.pop(s.span_id, None)
                wait([future])  # never leave the backend busy behind the caller's back
                raise
            self._known_spans += len(new)
            self._register_own_files(new, paths)
        # Look again: spans other processes added meanwhile must be in our roll-up.
        if self._refresh_span_files():
            self._load(touched)
        self._refresh_traces()
        stale = {
            t
            for t in touched
            if (t in with_new and rolled.get(t, (0,))[0] != len(self._known[t].spans))
            or (t not in with_new and self._best_count(t) != len(self._known[t].spans))
        }
        rolled.update(self._rollups(stale))
        self._write_rollups(rolled)
        self._shrink(touched)
        self._maybe_merge_trace_files()
        return len(new)

    def _maybe_merge_trace_files(self) -> None:
        """Every batch adds a small trace-row file; merge small ones now and then so that
        opening the store (which reads every trace row) stays fast without `compact`.
        Best effort: a failure (e.g. a concurrent compaction) is left for the next time."""
        self._writes_since_merge += 1
        if self._writes_since_merge < MERGE_CHECK_EVERY:
            return
        self._writes_since_merge = 0
        try:
            files = self.backend.files(TRACES)
            if len(files) < MERGE_MIN_FILES:
                return
            dataset = self.backend.dataset(TRACES, files)
            if dataset is None:
                return
            groups: dict[tuple[str, ...], list[str]] = {}
            rows = self._file_rows
            for fragment in dataset.get_fragments():
                count = rows.get(fragment.path)
                if count is None:  # files are immutable: read each footer once
                    count = rows[fragment.path] = fragment.count_rows()
                if count >= MERGE_MAX_ROWS:
                    continue  # already merged enough
                keys = ds.get_partition_keys(fragment.partition_expression)
                group = tuple(str(keys.get(c)) for c in _arrow.PARTITION_COLUMNS)
                groups.setdefault(group, []).append(fragment.path)
            current = set(files)
            for path in [p for p in rows if p not in current]:
                del rows[path]
            for group, paths in groups.items():
                if len(paths) >= MERGE_MIN_FILES:
                    known = self._trace_files_seen.issuperset(paths)
                    written = self.backend.merge(
                        TRACES,
                        paths,
                        dict(zip(_arrow.PARTITION_COLUMNS, group, strict=True)),
                        functools.partial(self._winning_rows, paths),
                    )
                    if known and written:
                        # nothing new in there: do not read our own merge back
                        self._trace_files_seen.update(written)
        except (StoreError, OSError, pa.ArrowException) as exc:
            _LOG.debug("merging trace-row files of %s skipped: %s", self.uri, exc)

    def _winning_rows(self, paths: Sequence[str]) -> pa.Table:
        part = self.backend.dataset(TRACES, paths)
        return _arrow.TRACES_SCHEMA.empty_table() if part is None else winners(part.to_table())

    # -- tags and assessments ------------------------------------------------------------
    def _require_trace(self, trace_id: str) -> None:
        self._refresh_traces()
        ids = self._traces_table().column("trace_id")
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
                self._refresh_span_files()
                self._load([trace_id])
                self._reroll([trace_id])
                self._shrink([trace_id])

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
        self._refresh_traces()
        view = self._trace_view()
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

    def get_trace(self, trace_id: str) -> Trace:
        trace_id = trace_id.lower()
        with self._lock:
            self._check_open()
            result: Trace = self._guard(lambda: self._get_trace(trace_id))
            return result

    def _get_trace(self, trace_id: str) -> Trace:
        self._require_trace(trace_id)
        table = self._traces_table()
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
                    data = _dedupe(table, part.to_table())
                    if len(paths) > 1 or data.num_rows < part.count_rows():
                        self.backend.replace(table, paths, data)
            self.backend.optimize()
            stats["traces_repaired"] = self._repair()
            for table in (SPANS, TRACES, ASSESSMENTS, TAG_OVERRIDES, EXPERIMENTS):
                after = self.backend.dataset(table)
                stats["files_after"] += 0 if after is None else len(after.files)
        return stats

    def _repair(self) -> int:
        """Re-derive trace rows that disagree with the span rows (a writer that died
        between writing its spans and their trace rows); returns how many."""
        self._refresh_span_files()
        self._refresh_traces()
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
            if self._best_count(trace_id) != count
        ]
        for i in range(0, len(stale), 1000):
            chunk = stale[i : i + 1000]
            for trace_id in chunk:
                self._known.pop(trace_id, None)
                self._known[trace_id] = _Known()
            self._read_into_cache(list(dataset.files), set(chunk))
            self._reroll(chunk)
            self._shrink(chunk)
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


def winners(rows: pa.Table) -> pa.Table:
    """One row per trace: the one built from the most spans + tag overrides, then the
    latest (vectorised: sort, keep the first row of each trace id)."""
    n = rows.num_rows
    ids = rows.column("trace_id")
    if n == 0 or pc.count_distinct(ids).as_py() == n:
        return rows.combine_chunks()
    order = pc.sort_indices(
        pa.table(
            {
                "t": ids,
                "b": pc.add(rows.column("span_count"), rows.column("tag_override_count")),
                "c": rows.column("computed_time_ns"),
            }
        ),
        sort_keys=[("t", "ascending"), ("b", "descending"), ("c", "descending")],
    )
    sorted_ids = ids.take(order)
    changed = pc.not_equal(sorted_ids.slice(1), sorted_ids.slice(0, n - 1))
    first = (
        pa.concat_arrays([pa.array([True]), *changed.chunks])
        if isinstance(changed, pa.ChunkedArray)
        else pa.concat_arrays([pa.array([True]), changed])
    )
    return rows.take(order.filter(first)).combine_chunks()


def _dedupe(table: str, data: pa.Table) -> pa.Table:
    """Keep one row per key: first span per (trace_id, span_id), winning trace row, latest
    assessment per id; override and experiment logs are kept whole."""
    if data.num_rows == 0:
        return data
    if table == SPANS:
        keyed = data.append_column("_i", pa.array(range(data.num_rows), pa.int64()))
        first = keyed.group_by(["trace_id", "span_id"], use_threads=False).aggregate(
            [("_i", "min")]
        )
        # Clustered by trace: row-group statistics then prune get_trace reads.
        return data.take(first.column("_i_min")).sort_by(
            [("trace_id", "ascending"), ("start_time_ns", "ascending")]
        )
    if table == TRACES:
        return winners(data)
    if table == ASSESSMENTS:
        order = pc.sort_indices(data, sort_keys=[("logged_time_ns", "descending")])
        ranked = data.take(order).append_column("_i", pa.array(range(data.num_rows), pa.int64()))
        first = ranked.group_by("assessment_id", use_threads=False).aggregate([("_i", "min")])
        return ranked.take(first.column("_i_min")).drop_columns(["_i"])
    return data


def _light(s: SpanRecord) -> SpanRecord:
    """The fields the roll-up reads (inputs/outputs only for roots: previews)."""
    root = s.parent_span_id is None
    return SpanRecord(
        trace_id=s.trace_id,
        span_id=s.span_id,
        parent_span_id=s.parent_span_id,
        experiment=s.experiment,
        name=s.name,
        span_type="",
        kind="",
        start_time_ns=s.start_time_ns,
        end_time_ns=s.end_time_ns,
        status=s.status,
        inputs=s.inputs if root else None,
        outputs=s.outputs if root else None,
        model=s.model,
        provider=s.provider,
        token_usage=s.token_usage,
        resource={"service.name": s.service_name} if s.service_name else {},
        trace_tags=s.trace_tags,
        trace_metadata=s.trace_metadata,
        client_request_id=s.client_request_id,
    )
