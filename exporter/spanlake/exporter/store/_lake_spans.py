"""What a writer knows of stored spans, so it can re-derive a trace without rescanning.

A writer keeps the light spans (no attributes/events) of traces still waiting for their root
(bounded LRU) and an index of the trace ids of span files that appeared in the last minutes;
a trace touched again is re-read from those files, and an older one whose stored trace row
counts more spans than we hold from all files. Not thread-safe: the store's lock guards it.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.dataset as ds

from spanlake.exporter.records import SpanRecord
from spanlake.exporter.store import _arrow
from spanlake.exporter.store._lake_backend import SPANS, LakeBackend, new_files

#: Light spans kept for re-deriving trace rows (~300 bytes each).
CACHE_MAX_SPANS = 200_000
#: How long a span file's trace ids are remembered: a writer finishes its trace rows well
#: within this, after which the trace rows themselves say how many spans a trace has.
RECENT_FILE_SECONDS = 120.0
RECENT_FILES_MAX = 5_000
RECENT_IDS_MAX = 500_000


class _Known:
    """What this process knows of one trace: its spans and the files they came from."""

    __slots__ = ("files", "spans")

    def __init__(self) -> None:
        self.spans: dict[str, SpanRecord] = {}
        self.files: set[str] = set()


class SpanCache:
    """Spans of recently touched traces, and which recent span files hold which traces."""

    def __init__(self, backend: LakeBackend) -> None:
        self.backend = backend
        self._files_seen: set[str] = set()  # span files whose trace ids we indexed
        self._recent: deque[tuple[float, str, frozenset[str]]] = deque()
        # trace id -> recent files holding it; tuples, not sets: one per trace, and the
        # garbage collector stops scanning tuples of strings (sets it scans every time)
        self._recent_index: dict[str, tuple[str, ...]] = {}
        self._recent_ids = 0
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._known_spans = 0

    # -- what we hold --------------------------------------------------------------------
    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._known

    def spans(self, trace_id: str) -> dict[str, SpanRecord]:
        """span id -> span of a trace :meth:`load` made current."""
        return self._known[trace_id].spans

    def add(self, spans: Sequence[SpanRecord]) -> None:
        """Hold spans being written (of traces :meth:`load` made current)."""
        known = self._known
        for s in spans:
            known[s.trace_id].spans[s.span_id] = s
        self._known_spans += len(spans)

    def discard(self, spans: Sequence[SpanRecord]) -> None:
        """Undo :meth:`add` (the write failed)."""
        for s in spans:
            if self._known[s.trace_id].spans.pop(s.span_id, None) is not None:
                self._known_spans -= 1

    def forget(self, trace_ids: Iterable[str]) -> None:
        """Drop what we hold of these traces (the next :meth:`read` starts afresh)."""
        for trace_id in trace_ids:
            dropped = self._known.pop(trace_id, None)
            if dropped is not None:
                self._known_spans -= len(dropped.spans)
            self._known[trace_id] = _Known()

    # -- span files ----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Index the trace ids of span files that appeared since we last looked (True if
        any did). A file holding only spans we already cache (our own) counts as loaded."""
        new = new_files(self.backend, SPANS, self._files_seen)
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

    def register_own_files(self, spans: Sequence[SpanRecord], paths: list[str] | None) -> None:
        """Index the files we just wrote without reading them back (when the backend says
        which they are; otherwise the next refresh reads their keys)."""
        if not paths:
            return
        ids = frozenset([s.trace_id for s in spans])
        # every span of these files is in the cache: they count as loaded for their traces
        cached = [known for t in ids if (known := self._known.get(t)) is not None]
        now = time.monotonic()
        for path in paths:
            self._files_seen.add(path)
            self._remember(path, ids, now)
            for known in cached:
                known.files.add(path)

    # -- loading -------------------------------------------------------------------------
    def load(self, trace_ids: Iterable[str], stored_count: Callable[[str], int | None]) -> None:
        """Make the cache hold every stored span of these traces: read the recent files
        that hold them, or scan everything for an old trace whose stored row counts more
        spans (``stored_count``) than we hold."""
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
            count = stored_count(trace_id)
            if count is not None and count > len(known.spans):
                full_scan.append(trace_id)
        if not wanted and not full_scan:
            return
        by_traces: dict[frozenset[str], list[str]] = {}
        for path, traces in wanted.items():
            by_traces.setdefault(frozenset(traces), []).append(path)
        for group, paths in by_traces.items():
            self.read(paths, set(group))
        full_scan = [t for t in full_scan if (stored_count(t) or 0) > len(self._known[t].spans)]
        if full_scan:
            self.read(self.backend.files(SPANS), set(full_scan))

    def read(self, paths: list[str], ids: set[str]) -> None:
        """Add the light spans of traces ``ids`` stored in span files ``paths``."""
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

    def shrink(self, trace_ids: Iterable[str]) -> None:
        """Keep in memory only what a later batch will need: traces whose root has arrived
        are dropped (later stragglers are found through the file index); the rest keep
        light copies. Then bound the cache (LRU)."""
        for trace_id in trace_ids:
            known = self._known[trace_id]
            for s in known.spans.values():
                if s.parent_span_id is None:  # the root is in
                    self._known_spans -= len(known.spans)
                    del self._known[trace_id]
                    break
            else:
                known.spans = {k: _light(s) for k, s in known.spans.items()}
        while self._known_spans > CACHE_MAX_SPANS and self._known:
            _, dropped = self._known.popitem(last=False)
            self._known_spans -= len(dropped.spans)


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
