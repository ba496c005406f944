"""The embedded experiment store: one SQLite file, WAL mode, safe for several processes.

Spans are the source of truth (``spans``, primary key (trace_id, span_id): a replayed span
is ignored). The ``traces`` table is derived: every write re-rolls the traces it touched
from *all* their stored spans (:func:`spanlake.exporter.rollup.rollup`) inside the same
transaction, so a trace record never depends on arrival order or on which process wrote
which span. ``BEGIN IMMEDIATE`` + ``busy_timeout`` serialise writers across processes; a
writer that still cannot get the lock raises :class:`TransientStoreError`.
"""

from __future__ import annotations

import base64
import errno
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from spanlake.exporter.errors import FilterError, NotFoundError, StoreError, TransientStoreError
from spanlake.exporter.records import (
    Assessment,
    AssessmentKind,
    AssessmentSource,
    Experiment,
    SpanEvent,
    SpanRecord,
    TokenUsage,
    Trace,
    TraceInfo,
    TracePage,
    TraceState,
)
from spanlake.exporter.rollup import rollup
from spanlake.exporter.store.base import DEFAULT_MAX_RESULTS, Store, stamp_assessment
from spanlake.exporter.store.filter import And, Comparison, Node, Or, parse_filter, parse_order_by
from spanlake.exporter.store.metrics import MetricsQuery, TraceMetrics
from spanlake.exporter.store.uri import StoreURI

_BUSY_TIMEOUT_MS = 10_000
_USAGE_COLS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_time_ms INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    span_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_time_ns INTEGER NOT NULL,
    end_time_ns INTEGER,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    inputs TEXT,
    outputs TEXT,
    model TEXT,
    provider TEXT,
    has_usage INTEGER NOT NULL DEFAULT 0,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _USAGE_COLS)},
    attributes TEXT NOT NULL DEFAULT '{{}}',
    events TEXT NOT NULL DEFAULT '[]',
    resource TEXT NOT NULL DEFAULT '{{}}',
    scope TEXT,
    service_name TEXT,
    trace_tags TEXT NOT NULL DEFAULT '{{}}',
    trace_metadata TEXT NOT NULL DEFAULT '{{}}',
    client_request_id TEXT,
    PRIMARY KEY (trace_id, span_id)
);
-- A rowid table, not WITHOUT ROWID: span rows are large (KBs of JSON), and clustering them
-- on random trace ids dirtied one leaf page per inserted span (4x slower writes); rows now
-- append in rowid order and only the small primary-key index takes random inserts.
-- No secondary span indexes: span-level filters run as EXISTS subqueries on the
-- (trace_id, span_id) primary-key prefix, and every extra B-tree slows each insert.
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    request_time_ms INTEGER NOT NULL,
    execution_time_ms INTEGER,
    request_preview TEXT,
    response_preview TEXT,
    tags TEXT NOT NULL DEFAULT '{{}}',
    metadata TEXT NOT NULL DEFAULT '{{}}',
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _USAGE_COLS)},
    cost_usd REAL,
    span_count INTEGER NOT NULL,
    models TEXT NOT NULL DEFAULT '[]',
    providers TEXT NOT NULL DEFAULT '[]',
    service_name TEXT,
    client_request_id TEXT
);
CREATE INDEX IF NOT EXISTS traces_exp_time ON traces (experiment_id, request_time_ms);
CREATE INDEX IF NOT EXISTS traces_time ON traces (request_time_ms);
CREATE INDEX IF NOT EXISTS traces_state ON traces (state, request_time_ms);
CREATE INDEX IF NOT EXISTS traces_duration ON traces (execution_time_ms);
CREATE INDEX IF NOT EXISTS traces_tokens ON traces (total_tokens);
CREATE INDEX IF NOT EXISTS traces_client_request ON traces (client_request_id);
CREATE TABLE IF NOT EXISTS trace_tag_overrides (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (trace_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS assessments (
    assessment_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    rationale TEXT,
    source_type TEXT NOT NULL,
    source_id TEXT,
    time_ms INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS assessments_trace ON assessments (trace_id);
CREATE INDEX IF NOT EXISTS assessments_name ON assessments (kind, name);
"""

_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, experiment_id, name, span_type, kind, start_time_ns, "
    "end_time_ns, status, status_message, inputs, outputs, model, provider, has_usage, "
    + ", ".join(_USAGE_COLS)
    + ", attributes, events, resource, scope, service_name, trace_tags, trace_metadata, "
    "client_request_id"
)
_INSERT_SPAN = f"INSERT OR IGNORE INTO spans ({_SPAN_COLUMNS}) VALUES ({', '.join('?' * len(_SPAN_COLUMNS.split(',')))})"
_TRACE_COLUMNS = (
    "trace_id, experiment_id, name, state, request_time_ms, execution_time_ms, request_preview, "
    "response_preview, tags, metadata, "
    + ", ".join(_USAGE_COLS)
    + ", cost_usd, span_count, models, providers, service_name, client_request_id"
)
_UPSERT_TRACE = f"INSERT OR REPLACE INTO traces ({_TRACE_COLUMNS}) VALUES ({', '.join('?' * len(_TRACE_COLUMNS.split(',')))})"

#: Trace-record fields (filter/order names) -> SQL expressions over ``t`` / ``e``.
_TRACE_SQL: dict[str, str] = {
    "experiment": "e.name",
    **{
        name: f"t.{name}"
        for name in (
            "trace_id name state request_time_ms execution_time_ms request_preview "
            "response_preview client_request_id service_name span_count cost_usd".split()
            + list(_USAGE_COLS)
        )
    },
}
_SPAN_SQL = {
    "name": "s.name",
    "type": "s.span_type",
    "model": "s.model",
    "provider": "s.provider",
    "status": "s.status",
}
_POSITIVE = {"!=": "=", "NOT LIKE": "LIKE", "NOT ILIKE": "ILIKE", "NOT IN": "IN"}


def _dumps(value: Any) -> str:
    if type(value) in (dict, list) and not value:  # common empty tags/events; not False/0
        return "[]" if isinstance(value, list) else "{}"
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _predicate(expr: str, op: str, value: Any, params: list[Any]) -> str:
    """``expr op value`` in SQL (LIKE is case-sensitive on our connections)."""
    if op in ("IN", "NOT IN"):
        params.extend(_sql_value(v) for v in value)
        return f"{expr} {op} ({', '.join('?' * len(value))})"
    params.append(_sql_value(value))
    if op == "ILIKE":
        return f"lower({expr}) LIKE lower(?)"
    if op == "NOT ILIKE":
        return f"NOT (lower({expr}) LIKE lower(?))"
    if op == "NOT LIKE":
        return f"NOT ({expr} LIKE ?)"
    return f"{expr} {op} ?"


def _compile(node: Node, params: list[Any]) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_compile(n, params) for n in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_compile(n, params) for n in node.items) + ")"
    return _compile_comparison(node, params)


def _compile_comparison(c: Comparison, params: list[Any]) -> str:
    f = c.field
    if f.kind == "trace":
        return _predicate(_TRACE_SQL[f.key], c.op, c.value, params)
    if f.kind in ("tag", "metadata"):
        column = "t.tags" if f.kind == "tag" else "t.metadata"
        params.append(_json_path(f.key))
        return _predicate(f"json_extract({column}, ?)", c.op, c.value, params)
    # Any-of semantics: positive ops need one match; negative ops need none.
    op = _POSITIVE.get(c.op, c.op)
    if f.kind in ("model", "provider"):
        column = "t.models" if f.kind == "model" else "t.providers"
        inner = _predicate("j.value", op, c.value, params)
        sub = f"SELECT 1 FROM json_each({column}) j WHERE {inner}"
    elif f.kind == "span":
        if f.key == "attributes":
            params.append(_json_path(f.attr))
            expr = "json_extract(s.attributes, ?)"
        else:
            expr = _SPAN_SQL[f.key]
        inner = _predicate(expr, op, c.value, params)
        sub = f"SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {inner}"
    else:  # feedback / expectation
        kind = (
            AssessmentKind.EXPECTATION.value
            if f.kind == "expectation"
            else AssessmentKind.FEEDBACK.value
        )
        params.extend([kind, f.key])
        inner = _predicate("json_extract(a.value, '$')", op, c.value, params)
        base = "SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id AND a.kind = ? AND a.name = ?"
        if c.negative:
            params.extend([kind, f.key])
            return f"(NOT EXISTS ({base} AND {inner}) AND EXISTS ({base}))"
        return f"EXISTS ({base} AND {inner})"
    return f"NOT EXISTS ({sub})" if c.negative else f"EXISTS ({sub})"


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(offset)
        return offset
    except Exception as exc:
        raise FilterError(f"Invalid page_token {token!r}", token=token) from exc


class SQLiteStore(Store):
    """SQLite implementation of :class:`Store` (one connection per thread)."""

    def __init__(self, path: str, uri: str | None = None) -> None:
        self.path = path
        self.uri = uri or f"sqlite:///{path}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._experiment_ids: dict[str, int] = {}
        self._experiment_names: dict[int, str] = {}
        self._closed = False
        self._resource_cache: tuple[dict[str, Any], str] | None = None
        self._pid = os.getpid()
        #: Opened without write access (read-only file, directory or mount): every read
        #: works, writes raise StoreError; nothing (schema, pragmas) is ever written.
        self.read_only = _needs_read_only(path)
        self._immutable = False
        conn = self._conn()
        if not self.read_only:
            self._retrying(lambda: conn.executescript(_SCHEMA))

    # -- connections ---------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # Forked child (gunicorn, multiprocessing): never reuse the parent's handles.
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"store {self.uri} is closed")
        if self.read_only:
            conn = self._connect_read_only()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
            return conn
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # Large pages suit KB-sized span rows (fewer overflow pages); only a new, empty
            # database takes it, so it must precede journal_mode.
            conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA case_sensitive_like = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro``: sees other processes' commits (a WAL database needs its -shm file
        or a writable directory for that). Failing that, and with no -wal file holding
        commits not yet in the main file, ``immutable=1``: the file is read as it is."""
        base = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        attempts = [base + "&immutable=1"] if self._immutable else [base]
        if not self._immutable and not os.path.exists(self.path + "-wal"):
            attempts.append(base + "&immutable=1")
        error: sqlite3.Error | None = None
        for target in attempts:
            conn = None
            try:
                conn = sqlite3.connect(
                    target,
                    uri=True,
                    timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA case_sensitive_like = ON")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # really opens
                self._immutable = target.endswith("immutable=1")
                return conn
            except sqlite3.Error as exc:
                error = exc
                if conn is not None:
                    conn.close()
        raise StoreError(f"cannot open SQLite store {self.path!r} read-only: {error}") from error

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"SQLite store {self.path!r} is read-only (no write access to the file, its "
                "directory or its filesystem): it can be read but not written"
            )

    def _retrying(self, fn: Any) -> Any:
        """Run ``fn``; map faults that pass (locked/busy database, full disk or quota, I/O
        errors) to TransientStoreError, so the receiver answers 503 / UNAVAILABLE and OTLP
        clients retry instead of dropping the spans."""
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if any(hint in message for hint in _TRANSIENT_HINTS):
                raise TransientStoreError(f"SQLite store unavailable: {exc}") from exc
            raise StoreError(f"SQLite error: {exc}") from exc
        except OSError as exc:
            if exc.errno in _TRANSIENT_ERRNOS:
                raise TransientStoreError(f"SQLite store unavailable: {exc}") from exc
            raise StoreError(f"SQLite store error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()
        self._local = threading.local()

    # -- experiments ---------------------------------------------------------------------
    def _experiment_id(self, conn: sqlite3.Connection, name: str) -> int:
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached
        pending: dict[str, int] = self._pending_experiments()
        if name in pending:
            return pending[name]
        conn.execute(
            "INSERT OR IGNORE INTO experiments (name, created_time_ms) VALUES (?, ?)",
            (name, int(time.time() * 1000)),
        )
        (exp_id,) = conn.execute(
            "SELECT experiment_id FROM experiments WHERE name = ?", (name,)
        ).fetchone()
        # Cached only once the transaction commits (``_transaction``): a rolled-back
        # insert must not leave an id that no row carries.
        pending[name] = int(exp_id)
        return int(exp_id)

    def _pending_experiments(self) -> dict[str, int]:
        pending: dict[str, int] | None = getattr(self._local, "pending_experiments", None)
        if pending is None:
            pending = self._local.pending_experiments = {}
        return pending

    def _settle_experiments(self, committed: bool) -> None:
        """Move this thread's experiment ids into the cache after a COMMIT; forget them
        after a ROLLBACK (or a failed COMMIT)."""
        pending = self._pending_experiments()
        if committed:
            for name, exp_id in pending.items():
                self._experiment_ids[name] = exp_id
                self._experiment_names[exp_id] = name
        pending.clear()

    def _experiment_name(self, conn: sqlite3.Connection, exp_id: int) -> str:
        name = self._experiment_names.get(exp_id)
        if name is None:
            row = conn.execute(
                "SELECT name FROM experiments WHERE experiment_id = ?", (exp_id,)
            ).fetchone()
            name = row[0] if row else str(exp_id)
            self._experiment_names[exp_id] = name
        return name

    def get_or_create_experiment(self, name: str) -> Experiment:
        conn = self._conn()

        def run() -> Experiment:
            with _transaction(conn, self):
                self._experiment_id(conn, name)
            row = conn.execute(
                "SELECT experiment_id, name, created_time_ms, tags FROM experiments WHERE name = ?",
                (name,),
            ).fetchone()
            return Experiment(str(row[0]), row[1], row[2], orjson.loads(row[3]))

        result: Experiment = self._retrying(run)
        return result

    def list_experiments(self) -> list[Experiment]:
        rows = self._retrying(
            lambda: (
                self._conn()
                .execute(
                    "SELECT experiment_id, name, created_time_ms, tags FROM experiments ORDER BY experiment_id"
                )
                .fetchall()
            )
        )
        return [Experiment(str(r[0]), r[1], r[2], orjson.loads(r[3])) for r in rows]

    # -- writes --------------------------------------------------------------------------
    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        if not spans:
            return 0
        conn = self._conn()
        trace_ids = list(dict.fromkeys(s.trace_id for s in spans))

        def run() -> int:
            with _transaction(conn, self):
                known = self._known_traces(conn, trace_ids)
                rows = [self._span_row(conn, s) for s in spans]
                before = conn.total_changes
                conn.executemany(_INSERT_SPAN, rows)
                inserted = conn.total_changes - before
                if inserted:
                    self._refresh(conn, trace_ids, known, spans)
                return inserted

        result: int = self._retrying(run)
        return result

    def _resource_json(self, resource: dict[str, Any]) -> str:
        """Spans of one process share one resource: encode it once, not per span."""
        cached = self._resource_cache
        if cached is not None and cached[0] == resource:
            return cached[1]
        text = _dumps(resource)
        self._resource_cache = (dict(resource), text)
        return text

    @staticmethod
    def _known_traces(conn: sqlite3.Connection, trace_ids: Sequence[str]) -> set[str]:
        """Which of ``trace_ids`` already have stored spans (a trace row exists iff so)."""
        known: set[str] = set()
        for chunk in _chunks(trace_ids):
            known.update(
                r[0]
                for r in conn.execute(
                    f"SELECT trace_id FROM traces WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            )
        return known

    def _span_row(self, conn: sqlite3.Connection, s: SpanRecord) -> tuple[Any, ...]:
        u = s.token_usage
        usage = (
            (
                u.input_tokens,
                u.output_tokens,
                u.total_tokens,
                u.cache_read_input_tokens,
                u.cache_creation_input_tokens,
                u.reasoning_output_tokens,
            )
            if u is not None
            else (0, 0, 0, 0, 0, 0)
        )
        return (
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            self._experiment_id(conn, s.experiment),
            s.name,
            s.span_type,
            s.kind,
            s.start_time_ns,
            s.end_time_ns,
            s.status,
            s.status_message,
            s.inputs,
            s.outputs,
            s.model,
            s.provider,
            int(u is not None),
            *usage,
            _dumps(s.attributes),
            _dumps([e.to_dict() for e in s.events]),
            self._resource_json(s.resource),
            s.scope,
            s.service_name,
            _dumps(s.trace_tags),
            _dumps(s.trace_metadata),
            s.client_request_id,
        )

    def _refresh(
        self,
        conn: sqlite3.Connection,
        trace_ids: Sequence[str],
        known: set[str] = frozenset(),  # type: ignore[assignment]
        batch: Sequence[SpanRecord] = (),
    ) -> None:
        """Re-derive the trace records of ``trace_ids`` from all their stored spans.

        A trace first seen in this batch has exactly the batch's spans (first copy of a
        duplicated span id wins, as with INSERT OR IGNORE), so it rolls up without a query;
        traces already stored are re-read in chunked IN queries.
        """
        grouped: dict[str, dict[str, SpanRecord]] = {}
        for span in batch:
            if span.trace_id not in known:
                grouped.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
        stored = [t for t in trace_ids if t in known or t not in grouped]
        overrides: dict[str, dict[str, str | None]] = {}
        for chunk in _chunks(stored):
            marks = ", ".join("?" * len(chunk))
            for r in conn.execute(
                "SELECT trace_id, span_id, parent_span_id, experiment_id, name, start_time_ns, "
                "end_time_ns, status, CASE WHEN parent_span_id IS NULL THEN inputs END, "
                "CASE WHEN parent_span_id IS NULL THEN outputs END, model, provider, has_usage, "
                + ", ".join(_USAGE_COLS)
                + ", service_name, trace_tags, trace_metadata, client_request_id "
                f"FROM spans WHERE trace_id IN ({marks})",
                chunk,
            ):
                span = self._light_span(conn, r[1:])
                span.trace_id = r[0]
                grouped.setdefault(r[0], {})[span.span_id] = span
            for trace_id, key, value in conn.execute(
                f"SELECT trace_id, key, value FROM trace_tag_overrides WHERE trace_id IN ({marks})",
                chunk,
            ):
                overrides.setdefault(trace_id, {})[key] = value
        rows = []
        for trace_id in trace_ids:
            spans = list(grouped.get(trace_id, {}).values())
            if not spans:
                continue
            overrides_of_trace = overrides.get(trace_id)
            info = rollup(spans, tag_overrides=overrides_of_trace)
            u = info.token_usage
            rows.append(
                (
                    info.trace_id,
                    self._experiment_id(conn, info.experiment),
                    info.name,
                    info.state.value,
                    info.request_time_ms,
                    info.execution_time_ms,
                    info.request_preview,
                    info.response_preview,
                    _dumps(info.tags),
                    _dumps(info.metadata),
                    u.input_tokens,
                    u.output_tokens,
                    u.total_tokens,
                    u.cache_read_input_tokens,
                    u.cache_creation_input_tokens,
                    u.reasoning_output_tokens,
                    info.cost_usd,
                    info.span_count,
                    _dumps(info.models),
                    _dumps(info.providers),
                    info.service_name,
                    info.client_request_id,
                )
            )
        conn.executemany(_UPSERT_TRACE, rows)

    def _light_span(self, conn: sqlite3.Connection, r: tuple[Any, ...]) -> SpanRecord:
        usage = TokenUsage(*r[12:18]) if r[11] else None
        return SpanRecord(
            trace_id="",
            span_id=r[0],
            parent_span_id=r[1],
            experiment=self._experiment_name(conn, r[2]),
            name=r[3],
            span_type="",
            kind="",
            start_time_ns=r[4],
            end_time_ns=r[5],
            status=r[6],
            inputs=r[7],
            outputs=r[8],
            model=r[9],
            provider=r[10],
            token_usage=usage,
            resource={"service.name": r[18]} if r[18] else {},
            trace_tags=orjson.loads(r[19]),
            trace_metadata=orjson.loads(r[20]),
            client_request_id=r[21],
        )

    # -- tags and assessments ------------------------------------------------------------
    def _require_trace(self, conn: sqlite3.Connection, trace_id: str) -> None:
        if conn.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone() is None:
            raise NotFoundError(f"trace {trace_id!r} not found in {self.uri}")

    def _set_tag_override(self, trace_id: str, key: str, value: str | None) -> None:
        conn = self._conn()

        def run() -> None:
            with _transaction(conn, self):
                self._require_trace(conn, trace_id)
                conn.execute(
                    "INSERT OR REPLACE INTO trace_tag_overrides (trace_id, key, value) VALUES (?, ?, ?)",
                    (trace_id, key, value),
                )
                self._refresh(conn, [trace_id], {trace_id})

        self._retrying(run)

    def log_assessment(self, assessment: Assessment) -> Assessment:
        a = assessment
        stamp_assessment(a)
        conn = self._conn()

        def run() -> None:
            with _transaction(conn, self):
                self._require_trace(conn, a.trace_id)
                conn.execute(
                    "INSERT OR REPLACE INTO assessments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        a.assessment_id,
                        a.trace_id,
                        a.span_id,
                        a.name,
                        a.kind.value,
                        _dumps(a.value),
                        a.rationale,
                        a.source_type.value,
                        a.source_id,
                        a.time_ms,
                        _dumps(a.metadata),
                    ),
                )

        self._retrying(run)
        return a

    # -- reads ---------------------------------------------------------------------------
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
        params: list[Any] = []
        where: list[str] = []
        if experiment_names is not None:
            names = list(experiment_names)
            if not names:
                return TracePage([])
            where.append(f"e.name IN ({', '.join('?' * len(names))})")
            params.extend(names)
        if node is not None:
            where.append(_compile(node, params))
        order_sql = ", ".join(
            f"{_TRACE_SQL[f]} IS NULL, {_TRACE_SQL[f]} {'ASC' if asc else 'DESC'}"
            for f, asc in order
        )
        sql = (
            f"SELECT e.name, {', '.join('t.' + c for c in _TRACE_COLUMNS.split(', ')[2:])}, t.trace_id "
            "FROM traces t JOIN experiments e ON e.experiment_id = t.experiment_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_sql}, t.trace_id ASC LIMIT ? OFFSET ?"
        )
        params.extend([max_results + 1, offset])
        rows = self._retrying(lambda: self._conn().execute(sql, params).fetchall())
        infos = [_trace_info(r) for r in rows[:max_results]]
        token = _encode_token(offset + max_results) if len(rows) > max_results else None
        return TracePage(infos, token)

    def trace_metrics(self, query: MetricsQuery) -> TraceMetrics:
        from spanlake.exporter.store._analytics_sqlite import sqlite_trace_metrics

        parse_filter(query.filter_string)  # a bad filter is a FilterError, not SQL trouble
        conn = self._conn()
        partials = self._retrying(lambda: sqlite_trace_metrics(conn, query, _compile))
        return TraceMetrics.from_partials(query, partials)

    def get_trace(self, trace_id: str) -> Trace:
        conn = self._conn()
        trace_id = trace_id.lower()

        def run() -> Trace:
            row = conn.execute(
                f"SELECT e.name, {', '.join('t.' + c for c in _TRACE_COLUMNS.split(', ')[2:])}, t.trace_id "
                "FROM traces t JOIN experiments e ON e.experiment_id = t.experiment_id "
                "WHERE t.trace_id = ?",
                (trace_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"trace {trace_id!r} not found in {self.uri}")
            spans = [
                self._full_span(conn, r)
                for r in conn.execute(
                    f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? "
                    "ORDER BY start_time_ns, span_id",
                    (trace_id,),
                )
            ]
            assessments = [
                _assessment(r)
                for r in conn.execute(
                    "SELECT * FROM assessments WHERE trace_id = ? ORDER BY time_ms, assessment_id",
                    (trace_id,),
                )
            ]
            return Trace(_trace_info(row), spans, assessments)

        result: Trace = self._retrying(run)
        return result

    def _full_span(self, conn: sqlite3.Connection, r: tuple[Any, ...]) -> SpanRecord:
        return SpanRecord(
            trace_id=r[0],
            span_id=r[1],
            parent_span_id=r[2],
            experiment=self._experiment_name(conn, r[3]),
            name=r[4],
            span_type=r[5],
            kind=r[6],
            start_time_ns=r[7],
            end_time_ns=r[8],
            status=r[9],
            status_message=r[10],
            inputs=r[11],
            outputs=r[12],
            model=r[13],
            provider=r[14],
            token_usage=TokenUsage(*r[16:22]) if r[15] else None,
            attributes=orjson.loads(r[22]),
            events=[
                SpanEvent(e["name"], e["time_ns"], e["attributes"]) for e in orjson.loads(r[23])
            ],
            resource=orjson.loads(r[24]),
            scope=r[25],
            trace_tags=orjson.loads(r[27]),
            trace_metadata=orjson.loads(r[28]),
            client_request_id=r[29],
        )

    def iter_spans(self, batch_size: int = 10_000) -> Iterator[list[SpanRecord]]:
        conn = self._conn()
        last: tuple[str, str] = ("", "")
        while True:
            rows = conn.execute(
                f"SELECT {_SPAN_COLUMNS} FROM spans WHERE (trace_id, span_id) > (?, ?) "
                "ORDER BY trace_id, span_id LIMIT ?",
                (*last, batch_size),
            ).fetchall()
            if not rows:
                return
            yield [self._full_span(conn, r) for r in rows]
            last = (rows[-1][0], rows[-1][1])

    def iter_assessments(self) -> Iterator[Assessment]:
        for row in self._conn().execute(
            "SELECT * FROM assessments ORDER BY time_ms, assessment_id"
        ):
            yield _assessment(row)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _trace_info(r: tuple[Any, ...]) -> TraceInfo:
    return TraceInfo(
        trace_id=r[21],
        experiment=r[0],
        name=r[1],
        state=TraceState(r[2]),
        request_time_ms=r[3],
        execution_time_ms=r[4],
        request_preview=r[5],
        response_preview=r[6],
        tags=orjson.loads(r[7]),
        metadata=orjson.loads(r[8]),
        token_usage=TokenUsage(*r[9:15]),
        cost_usd=r[15],
        span_count=r[16],
        models=orjson.loads(r[17]),
        providers=orjson.loads(r[18]),
        service_name=r[19],
        client_request_id=r[20],
    )


def _assessment(r: tuple[Any, ...]) -> Assessment:
    return Assessment(
        assessment_id=r[0],
        trace_id=r[1],
        span_id=r[2],
        name=r[3],
        kind=AssessmentKind(r[4]),
        value=orjson.loads(r[5]),
        rationale=r[6],
        source_type=AssessmentSource(r[7]),
        source_id=r[8],
        time_ms=r[9],
        metadata=orjson.loads(r[10]),
    )


# SQLite's messages for faults that pass: SQLITE_BUSY/LOCKED, SQLITE_FULL ("database or
# disk is full", also a full quota), SQLITE_IOERR, SQLITE_CANTOPEN on a missing mount.
_TRANSIENT_HINTS = ("locked", "busy", "disk i/o", "disk is full", "unable to open")
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN})


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error): takes the write lock up front
    so two processes never deadlock upgrading read locks."""

    def __init__(self, conn: sqlite3.Connection, store: SQLiteStore) -> None:
        self.conn = conn
        self.store = store

    def __enter__(self) -> None:
        self.store._check_writable()
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        committed = False
        try:
            if exc_type is None:
                self.conn.execute("COMMIT")
                committed = True
            else:
                self.conn.execute("ROLLBACK")
        finally:
            self.store._settle_experiments(committed)


def _needs_read_only(path: str) -> bool:
    """True when an existing database cannot be written by us: the file, its directory
    (SQLite creates -wal/-shm/journal files there) or an existing -wal file is not writable,
    or the filesystem is mounted read-only (``access`` says so even to root)."""
    if not os.path.exists(path):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    wal = path + "-wal"
    return not (
        os.access(path, os.W_OK)
        and os.access(directory, os.W_OK)
        and (not os.path.exists(wal) or os.access(wal, os.W_OK))
    )


def open_sqlite_store(uri: StoreURI) -> SQLiteStore:
    """Factory registered for ``sqlite://`` URIs."""
    directory = os.path.dirname(uri.path)
    if directory and not os.path.isdir(directory):
        from spanlake.exporter.errors import ConfigError

        raise ConfigError(f"Directory of SQLite store {uri.raw!r} does not exist: {directory}")
    return SQLiteStore(uri.path, uri.raw)
