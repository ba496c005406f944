"""The Delta Lake store: the same five tables as Delta tables (deltalake / delta-rs).

``delta:///rel/dir``, ``delta:////abs/dir`` or an object store (``delta+s3://bucket/prefix``,
``delta+gs://``, ``delta+az://``, credentials from the usual env vars, e.g. ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``). Each table
(``spans``, ``traces``, ``assessments``, ``tag_overrides``, ``experiments``) is a Delta table
readable by Spark/Databricks, Polars, DuckDB (through Arrow) and pyarrow.

Appends carry an application transaction id derived from the batch's span keys, so a
retried batch that was in fact committed is skipped. delta-rs commits can conflict when
several processes append at once; a conflicting commit is retried with jittered backoff,
and only after that fails is :class:`TransientStoreError` raised (nothing committed).
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs

from spanlake.exporter.errors import ConfigError, StoreError, TransientStoreError
from spanlake.exporter.store._lake import LakeStore
from spanlake.exporter.store._lake_backend import (
    DICTIONARY_COLUMNS,
    PARTITIONED,
    SCHEMAS,
    LakeBackend,
)
from spanlake.exporter.store.uri import StoreURI

try:
    from deltalake import (
        ColumnProperties,
        CommitProperties,
        DeltaTable,
        Transaction,
        WriterProperties,
        write_deltalake,
    )
    from deltalake.exceptions import DeltaError, TableNotFoundError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the delta store needs 'deltalake' (pip install 'spanlake[lake]')") from exc

#: Commit attempts (each with delta-rs's own retries) before giving up on a write.
COMMIT_ATTEMPTS = 12
#: Columns whose min/max/null counts go into the Delta log (engines skip files with them).
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "spans": (
        "trace_id",
        "span_id",
        "name",
        "span_type",
        "start_time_ns",
        "end_time_ns",
        "status",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "service_name",
    ),
    "traces": (
        "trace_id",
        "name",
        "state",
        "request_time_ms",
        "execution_time_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "span_count",
        "service_name",
    ),
}
#: Versions after which a table handle is reopened (delta-rs checkpoints every 100).
REOPEN_EVERY_VERSIONS = 100
#: A handle is brought up to date (full log listing) at least this often.
FULL_UPDATE_SECONDS = 30.0
#: Writers' periodic merges of small trace-row files stop merging a file past this size.
MERGE_TARGET_BYTES = 2**20
#: commitInfo key carrying a per-append token, to recognise our own commit in the log.
COMMIT_TOKEN = "spanlake.commit"
_BACKEND_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfss": "abfss"}
_ENV_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_")


def storage_options_from_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Object-store settings from the usual env vars (``AWS_REGION`` -> ``aws_region``)."""
    env = os.environ if environ is None else environ
    return {k.lower(): v for k, v in env.items() if k.startswith(_ENV_PREFIXES) and v}


#: Settings by which a user chose how S3 commits are made safe; without one, conditional put.
_S3_COMMIT_KEYS = ("aws_conditional_put", "conditional_put", "aws_s3_locking_provider")


def s3_commit_options(options: dict[str, str]) -> dict[str, str]:
    """Several writers on one S3 table are safe only if a commit file cannot be overwritten:
    ask for conditional put (``If-None-Match``, served by AWS S3, MinIO and R2) unless the
    user configured it, or a locking provider, explicitly (``AWS_CONDITIONAL_PUT``...).
    delta-rs defaults to it today; saying so keeps it true across deltalake versions."""
    if any(key in options for key in _S3_COMMIT_KEYS):
        return options
    return {**options, "aws_conditional_put": "etag"}


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(
        word in text
        for word in (
            "conflict", "already exists", "version", "concurrent", "commit", "timed out",
            # a full disk or quota passes once space is freed (os error 28 / 122)
            "no space left", "os error 28", "quota exceeded", "os error 122",
        )
    )


class DeltaBackend(LakeBackend):
    """Tables as Delta tables under one root URI."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self.root = root.rstrip("/")
        self.location = self.root
        self.storage_options = storage_options or None
        self._tables: dict[str, DeltaTable] = {}
        self._opened_at: dict[str, int] = {}  # version each handle was opened at
        self._updated_at: dict[str, float] = {}  # monotonic time of the last update
        self._files: dict[str, tuple[int, list[str]]] = {}
        self._remote_fs: dict[str, pa_fs.FileSystem] = {}
        self._local = pa_fs.LocalFileSystem()
        self._format = ds.ParquetFileFormat()
        # small row groups: compacted files are sorted by trace id (lookups read one group)
        self._writer = _writer_properties("ZSTD")
        # per-batch trace-row files are small and soon bin-packed (zstd) by the writer's
        # merges: snappy makes them a third cheaper to write
        self._small_writer = _writer_properties("SNAPPY")

    def table_uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def _table(self, table: str) -> DeltaTable | None:
        """The table at its latest version. A handle kept up to date incrementally replays
        every commit since it was opened on each operation (a commit cost 6 ms at 100
        versions, 39 ms at 600), so it is reopened, from the latest checkpoint, every
        :data:`REOPEN_EVERY_VERSIONS`."""
        dt = self._tables.get(table)
        try:
            if dt is not None and dt.version() - self._opened_at[table] < REOPEN_EVERY_VERSIONS:
                now = time.monotonic()
                # A full update now and then anyway: log cleanup may have removed the next
                # version's file under a handle left idle for longer than the log retention.
                if (
                    self._log_exists(table, dt.version() + 1)
                    or now - self._updated_at.get(table, 0.0) > FULL_UPDATE_SECONDS
                ):
                    dt.update_incremental()
                    self._updated_at[table] = now
                return dt
            dt = DeltaTable(self.table_uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        self._tables[table] = dt
        self._opened_at[table] = dt.version()
        self._updated_at[table] = time.monotonic()
        return dt

    def _log_exists(self, table: str, version: int) -> bool:
        """Whether commit ``version`` may exist: one stat, where delta-rs's
        ``update_incremental`` lists the whole log (~1 ms at 500 versions). Local tables
        only (True on object stores: their handler is for data files)."""
        if "://" in self.root:
            return True
        return os.path.exists(f"{self.table_uri(table)}/_delta_log/{version:020d}.json")

    def files(self, table: str) -> list[str]:
        dt = self._table(table)
        if dt is None:
            return []
        version = dt.version()
        cached = self._files.get(table)
        if cached is None or cached[0] != version:
            uris = dt.file_uris()
            if "://" not in self.root:
                uris = [self._local_file(table, uri) for uri in uris]
            cached = self._files[table] = (version, list(uris))
        return cached[1]

    def _local_file(self, table: str, uri: str) -> str:
        """The real path of a local ``file_uris()`` entry: deltalake percent-encodes the
        table's root (``/tmp/a b`` -> ``/tmp/a%20b``) but not the hive directory names,
        which hold their own escapes (``experiment=a%20b`` on disk), so the root is
        swapped for ours and the partition part kept as is."""
        segments = uri.split("/")
        start = next(
            (i for i, seg in enumerate(segments) if seg.startswith("experiment=")),
            len(segments) - 1,
        )
        return f"{self.table_uri(table)}/{'/'.join(segments[start:])}"

    def dataset(
        self, table: str, paths: Sequence[str] | None = None
    ) -> ds.FileSystemDataset | None:
        """Fragments built straight from the file URIs and their hive directory names:
        ``DeltaTable.to_pyarrow_dataset()`` also turns every file's statistics into
        expressions, which costs seconds per call on a busy table."""
        paths = self.files(table) if paths is None else list(paths)
        if not paths:
            return None
        filesystem, base = self._filesystem(table)
        fragments = [
            self._format.make_fragment(
                _object_path(uri, base),
                filesystem,
                partition_expression=_partition_expression(uri),
            )
            for uri in paths
        ]
        return ds.FileSystemDataset(fragments, SCHEMAS[table], self._format, filesystem)

    def _filesystem(self, table: str) -> tuple[pa_fs.FileSystem, str | None]:
        """(filesystem, URI prefix to strip): local paths as they are; object stores through
        pyarrow's own filesystem for the scheme (S3 reads the usual ``AWS_*`` variables,
        ``AWS_ENDPOINT_URL`` included), addressed as ``bucket/key``. deltalake's storage
        handler mangled hive-partitioned paths and stalled on them."""
        if "://" not in self.root:
            return self._local, None
        found = self._remote_fs.get(table)
        if found is None:
            found, _ = pa_fs.FileSystem.from_uri(self.table_uri(table))
            self._remote_fs[table] = found
        return found, self.root.split("://", 1)[0] + "://"

    def _commit(self, fn: Any) -> None:
        """Run a commit, retrying conflicts with jittered exponential backoff."""
        delay = 0.01
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                fn()
                return
            except (DeltaError, OSError) as exc:
                if attempt == COMMIT_ATTEMPTS - 1 or not (
                    isinstance(exc, OSError) or _transient(exc)
                ):
                    if isinstance(exc, OSError) or _transient(exc):
                        raise TransientStoreError(
                            f"Delta commit to {self.root} failed after {attempt + 1} attempts: {exc}"
                        ) from exc
                    raise StoreError(f"Delta commit to {self.root} failed: {exc}") from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def append(self, table: str, data: pa.Table, *, txn_id: str | None = None) -> list[str] | None:
        committed: list[bool] = []
        token = uuid.uuid4().hex  # finds our commit in the log afterwards

        def run() -> None:
            dt = self._table(table)
            if txn_id is not None and dt is not None and dt.transaction_version(txn_id) is not None:
                committed.append(True)  # a retried batch: already in the table
                return
            write_deltalake(
                dt if dt is not None else self.table_uri(table),
                data,
                partition_by=["experiment", "date"] if table in PARTITIONED else None,
                mode="append",
                storage_options=self.storage_options if dt is None else None,
                configuration=_table_configuration(table) if dt is None else None,
                writer_properties=self._small_writer if table == "traces" else self._writer,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(txn_id, 1)] if txn_id else None,
                    max_commit_retries=20,
                    custom_metadata={COMMIT_TOKEN: token},
                ),
            )

        self._commit(run)
        return [] if committed else self._added_files(table, token)

    def _added_files(self, table: str, token: str) -> list[str] | None:
        """The files our commit added (so the store need not read its own files back)."""
        change = self._our_commit(table, token)
        return None if change is None else change[0]

    def _our_commit(self, table: str, token: str) -> tuple[list[str], list[str]] | None:
        """(added, removed) file URIs of our latest commit, read from its log entry; None
        when that entry cannot be read or is not ours (the caller then reads files back).
        Keeps the file-list cache current without listing the whole table again. Local
        tables only: deltalake's object-store handler serves data files, and reading the
        log through it stalled (minutes, on S3's wire protocol)."""
        if "://" in self.root:
            return None
        try:
            dt = self._tables.get(table) or self._table(table)
            if dt is None:
                return None
            version = dt.version()
            with open(f"{self.table_uri(table)}/_delta_log/{version:020d}.json", "rb") as fh:
                entries = [orjson.loads(line) for line in fh.read().splitlines() if line]
        except (OSError, DeltaError, orjson.JSONDecodeError):
            return None
        if not any(e.get("commitInfo", {}).get(COMMIT_TOKEN) == token for e in entries):
            return None
        prefix = dt.table_uri.rstrip("/")
        if prefix.startswith("file://"):
            prefix = urllib.parse.unquote(prefix[len("file://") :])

        def uris(kind: str) -> list[str]:
            # log paths are percent-encoded once more than file_uris()
            return [
                f"{prefix}/{urllib.parse.unquote(e[kind]['path'])}" for e in entries if kind in e
            ]

        added, removed = uris("add"), uris("remove")
        cached = self._files.get(table)
        if cached is not None and cached[0] == version - 1:
            gone = set(removed)
            self._files[table] = (version, [f for f in cached[1] if f not in gone] + added)
        return added, removed

    def replace(self, table: str, remove: Sequence[str], data: pa.Table | None) -> None:
        """Rewrite the partition the files belong to (whole table when unpartitioned).

        One attempt only: a retry would re-read a newer snapshot and overwrite rows that a
        concurrent writer appended meanwhile. A conflict fails this compaction step instead
        (TransientStoreError); nothing is lost and ``compact`` can simply be run again."""
        if data is None or data.num_rows == 0:
            return
        predicate = None
        if table in PARTITIONED:
            experiment = data.column("experiment")[0].as_py()
            date = data.column("date")[0].as_py()
            predicate = f"experiment = {_sql_str(experiment)} AND date = {_sql_str(date)}"

        dt = self._table(table)
        current = self.dataset(table)
        if dt is None or current is None:
            return
        partition = (
            {
                "experiment": data.column("experiment")[0].as_py(),
                "date": data.column("date")[0].as_py(),
            }
            if table in PARTITIONED
            else {}
        )
        in_partition = {
            f.path
            for f in current.get_fragments()
            if all(
                ds.get_partition_keys(f.partition_expression).get(k) == v
                for k, v in partition.items()
            )
        }
        if in_partition != set(remove):
            return  # a writer added files since they were read: skip this step
        try:
            write_deltalake(
                dt,
                data,
                mode="overwrite",
                predicate=predicate,
                writer_properties=self._writer,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except DeltaError as exc:
            raise TransientStoreError(f"compaction of {table} conflicted: {exc}") from exc

    def merge(
        self,
        table: str,
        paths: Sequence[str],
        partition: Mapping[str, str],
        rows: Callable[[], pa.Table],
    ) -> list[str] | None:
        """Delta's own bin-packing of the partition's small files (an overwrite would also
        drop its big ones; ``rows`` is not needed); duplicates left in are resolved by
        readers and `compact`. Files reaching :data:`MERGE_TARGET_BYTES` are left alone
        afterwards, so a writer's periodic merges do not rewrite the whole partition each
        time. Returns the merged files when the merge consumed only ``paths``."""
        dt = self._table(table)
        if dt is None:
            return None
        filters: list[tuple[str, str, Any]] = []
        if table in PARTITIONED:
            filters = [(key, "=", value) for key, value in partition.items()]
        token = uuid.uuid4().hex
        try:
            dt.optimize.compact(
                partition_filters=filters or None,
                target_size=MERGE_TARGET_BYTES,
                writer_properties=self._writer,
                commit_properties=CommitProperties(custom_metadata={COMMIT_TOKEN: token}),
            )
        except DeltaError as exc:
            raise TransientStoreError(f"merging {table} files conflicted: {exc}") from exc
        change = self._our_commit(table, token)
        if change is None or not set(change[1]) <= set(paths):
            return None
        return change[0]

    def optimize(self) -> None:
        """Bin-pack the span and trace tables, then checkpoint every table: a reader
        (Polars, Spark, delta-rs) otherwise replays up to 99 JSON commits since the last
        automatic checkpoint (a Polars group-by over 300k compacted spans: 35 ms -> 13 ms)."""
        for table in ("spans", "traces"):
            dt = self._table(table)
            if dt is not None:
                self._commit(lambda dt=dt: dt.optimize.compact(writer_properties=self._writer))
        for table in SCHEMAS:
            dt = self._table(table)
            if dt is not None:
                self._commit(dt.create_checkpoint)

    def vacuum(self, retention_hours: float, *, dry_run: bool) -> list[str]:
        removed: list[str] = []
        for table in SCHEMAS:
            dt = self._table(table)
            if dt is None:
                continue
            files = dt.vacuum(
                retention_hours=int(retention_hours),
                dry_run=dry_run,
                enforce_retention_duration=False,  # checked by the caller (safeguard)
            )
            removed.extend(f"{table}/{f}" for f in files)
        return sorted(removed)


def _writer_properties(compression: Literal["ZSTD", "SNAPPY"]) -> WriterProperties:
    """Dictionary encoding only for low-cardinality columns (as the Parquet store): trying
    it on the ~2 KB JSON columns costs a tenth of a span commit and makes files bigger."""
    return WriterProperties(
        compression=compression,
        max_row_group_size=16_384,
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={
            c: ColumnProperties(dictionary_enabled=True) for c in DICTIONARY_COLUMNS
        },
    )


def _table_configuration(table: str) -> dict[str, str | None] | None:
    """Properties of a table we create: log statistics (data skipping) only for the columns
    worth filtering on, not for the ~2 KB JSON columns (a sixth of a span commit's CPU)."""
    columns = STATS_COLUMNS.get(table)
    return {"delta.dataSkippingStatsColumns": ",".join(columns)} if columns else None


def _object_path(uri: str, base: str | None) -> str:
    """A file's path for the filesystem: local paths as they are; on object stores
    ``bucket/key`` (file lists hold ``s3://bucket/key``, fragment paths already ``bucket/key``)."""
    if base is None:
        return uri
    return urllib.parse.unquote(uri[len(base) :]) if uri.startswith(base) else uri


def _partition_expression(uri: str) -> ds.Expression:
    """``.../experiment=a%20b/date=2024-01-02/part-0.parquet`` -> experiment == 'a b' & ..."""
    expression: ds.Expression | None = None
    for segment in uri.split("/")[:-1]:
        key, sep, value = segment.partition("=")
        if sep and key in ("experiment", "date"):
            term = ds.field(key) == urllib.parse.unquote(value)
            expression = term if expression is None else expression & term
    return expression if expression is not None else ds.scalar(True)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def open_delta_store(uri: StoreURI) -> LakeStore:
    """Factory registered for ``delta://`` and ``delta+<backend>://`` URIs."""
    if uri.backend is not None:
        scheme = _BACKEND_SCHEMES.get(uri.backend)
        if scheme is None:
            known = ", ".join(sorted(_BACKEND_SCHEMES))
            raise ConfigError(
                f"Unknown object store {uri.backend!r} in {uri.raw!r}; known: {known}"
            )
        options = storage_options_from_env()
        if scheme == "s3":
            options = s3_commit_options(options)
        return LakeStore(DeltaBackend(f"{scheme}://{uri.path}", options), uri.raw)
    parent = os.path.dirname(uri.path.rstrip(os.sep))
    if parent and not os.path.isdir(parent):
        raise ConfigError(f"Parent directory of Delta store {uri.raw!r} does not exist: {parent}")
    os.makedirs(uri.path, exist_ok=True)
    return LakeStore(DeltaBackend(uri.path), uri.raw)
