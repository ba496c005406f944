"""The ``traces`` table as a process sees it: winning rows, span counts, small-file merges.

Spans are the source of truth; the ``traces`` table is a materialised roll-up with several
rows per trace (one per write that touched it). Readers keep the winning row per trace
(:func:`._lake_dedupe.winners`) in one Arrow table, merged vectorised as new trace-row files
appear; writers keep a lighter index, trace id -> span count of its winning row, to notice
an old trace touched again. Writers also merge small trace-row files as they go, so that
opening a store (which reads every trace row) stays fast without ``compact``. Not
thread-safe: the store's lock guards it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from spanlake.exporter.errors import StoreError
from spanlake.exporter.store import _arrow
from spanlake.exporter.store._lake_backend import TRACES, LakeBackend, new_files
from spanlake.exporter.store._lake_dedupe import winners
from spanlake.exporter.store._query_arrow import TraceView

_LOG = logging.getLogger(__name__)

#: Trace-row files: a partition's small files (< MERGE_MAX_ROWS rows) are merged once there
#: are MERGE_MIN_FILES of them, checked every MERGE_CHECK_EVERY writes.
MERGE_CHECK_EVERY = 16
MERGE_MIN_FILES = 16
MERGE_MAX_ROWS = 50_000
#: Trace -> span count entries a writer keeps (to notice an old trace touched again).
BEST_MAX = 2_000_000


class TraceRows:
    """The winning trace rows (for reads) and span counts (for writes) of one process."""

    def __init__(self, backend: LakeBackend) -> None:
        self.backend = backend
        self._files_seen: set[str] = set()
        self._pending: list[pa.Table] = []  # rows not merged into the read view
        self._materialised: pa.Table | None = None  # the winning row per trace
        self._view: TraceView | None = None
        self._count_pending: list[pa.Table] = []  # rows not yet in _best
        self._best: dict[str, tuple[tuple[int, int], int]] = {}  # -> (basis, span_count)
        self._writes_since_merge = 0
        self._file_rows: dict[str, int] = {}  # trace-row file -> rows

    # -- rows coming in ------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in trace-row files that appeared since we last looked."""
        new = new_files(self.backend, TRACES, self._files_seen)
        if new is not None:
            self._add(new.to_table())

    def _add(self, rows: pa.Table) -> None:
        self._count_pending.append(rows)
        if self._materialised is not None:  # only processes that search keep rows
            self._pending.append(rows)

    def add_own(
        self, rows: pa.Table, paths: list[str] | None, counts: Mapping[str, tuple[int, int]]
    ) -> None:
        """Rows this process just appended (``counts``: trace id -> (span count, tag
        overrides) of each row). When the backend said which files hold them, they are not
        read back: the count index is updated directly."""
        if paths is None:
            return  # the next refresh reads them
        self._files_seen.update(paths)
        if self._materialised is not None:
            self._pending.append(rows)
        self._sync_best()
        best = self._best
        computed = rows.column("computed_time_ns")[0].as_py()
        for trace_id, (count, n_overrides) in counts.items():
            basis = (count + n_overrides, computed)
            old = best.get(trace_id)
            if old is None or basis > old[0]:
                best[trace_id] = (basis, count)

    def add_unstored(self, rows: pa.Table) -> None:
        """Rows derived in memory but not stored (a read-only lake): seen by this process."""
        self._add(rows)

    def short_of(self, trace_ids: pa.Array, on_disk: pa.Array) -> list[str]:
        """Traces whose winning row is missing or counts fewer spans than ``on_disk``."""
        if self._materialised is not None:  # readers: vectorised over the winning rows
            rows = self.table().select(["trace_id", "span_count"])
            disk = pa.table({"trace_id": trace_ids, "on_disk": on_disk})
            joined = disk.join(rows, "trace_id", join_type="left outer")
            counts = joined.column("span_count")
            short = pc.or_kleene(pc.is_null(counts), pc.less(counts, joined.column("on_disk")))
            return sorted(joined.filter(short).column("trace_id").to_pylist())
        return sorted(  # writers: their count index (they keep no rows)
            t
            for t, n in zip(trace_ids.to_pylist(), on_disk.to_pylist(), strict=True)
            if (self.best_count(t) or 0) < n
        )

    # -- writers: span counts ------------------------------------------------------------
    def best_count(self, trace_id: str) -> int | None:
        """Spans in the winning row of a trace (None: no row). Writers only: the lookup
        dict is built lazily so that readers never pay for it."""
        if self._count_pending:  # called per touched trace: skip the call when in sync
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

    # -- readers: the winning rows -------------------------------------------------------
    def table(self) -> pa.Table:
        """The winning row of every trace (merged vectorised, only after a change). The
        first call reads the whole table; writers that never search keep no rows."""
        if self._materialised is None:
            self.refresh()
            current = set(self.backend.files(TRACES)) & self._files_seen
            dataset = self.backend.dataset(TRACES, sorted(current)) if current else None
            self._materialised = (
                winners(dataset.to_table())
                if dataset is not None
                else _arrow.TRACES_SCHEMA.empty_table()
            )
            self._pending = []
            self._view = None
        if self._pending:
            self._materialised = winners(pa.concat_tables([self._materialised, *self._pending]))
            self._pending = []
            self._view = None
        return self._materialised

    def view(self) -> TraceView:
        """:meth:`table` with the query helpers' flattened views (built once per change)."""
        table = self.table()
        if self._view is None or self._view.table is not table:
            self._view = TraceView(table)
        return self._view

    # -- writers: merging small files ----------------------------------------------------
    def maybe_merge(self) -> None:
        """Every batch adds a small trace-row file; merge small ones now and then so that
        opening the store (which reads every trace row) stays fast without `compact`.
        Best effort: a failure (e.g. a concurrent compaction) is left for the next time."""
        self._writes_since_merge += 1
        if self._writes_since_merge < MERGE_CHECK_EVERY:
            return
        self._writes_since_merge = 0
        try:
            self._merge_small_files()
        except (StoreError, OSError, pa.ArrowException) as exc:
            _LOG.debug("merging trace-row files of %s skipped: %s", self.backend.location, exc)

    def _merge_small_files(self) -> None:
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
                known = self._files_seen.issuperset(paths)
                written = self.backend.merge(
                    TRACES,
                    paths,
                    dict(zip(_arrow.PARTITION_COLUMNS, group, strict=True)),
                    functools.partial(self._winning_rows, paths),
                )
                if known and written:
                    # nothing new in there: do not read our own merge back
                    self._files_seen.update(written)

    def _winning_rows(self, paths: Sequence[str]) -> pa.Table:
        part = self.backend.dataset(TRACES, paths)
        return _arrow.TRACES_SCHEMA.empty_table() if part is None else winners(part.to_table())
