"""The Parquet store: plain hive-partitioned Parquet files any engine can read.

``parquet:///rel/dir`` / ``parquet:////abs/dir`` holds one directory per table
(``spans/experiment=NAME/date=YYYY-MM-DD/part-*.parquet``, ``traces/...``,
``assessments/``, ``tag_overrides/``, ``experiments/``). Each file is written under a
hidden temporary name, fsynced, then renamed into place, so a reader never sees half a
file; names starting with ``.`` or ``_`` are ignored by pyarrow, Polars and Spark. A
retried batch maps to the same file name (its transaction id) and is skipped. Compaction
moves replaced files to ``_trash/``; ``vacuum`` deletes them after the retention.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from spanlake.exporter._durable import fsync_dir
from spanlake.exporter.errors import ConfigError
from spanlake.exporter.store._lake import LakeStore
from spanlake.exporter.store._lake_backend import (
    DICTIONARY_COLUMNS,
    PARTITIONED,
    SCHEMAS,
    TRACES,
    LakeBackend,
)
from spanlake.exporter.store.uri import StoreURI

_PARTITION_SCHEMA = pa.schema([("experiment", pa.string()), ("date", pa.string())])
_STATS_COLUMNS = ["trace_id", "start_time_ns", "request_time_ms"]
TRASH = "_trash"
ROW_GROUP_ROWS = 16_384


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _write_atomic(
    table: pa.Table, path: str, *, durable_rename: bool = True, compression: str = "zstd"
) -> None:
    """Write to a hidden temporary name in the same directory, fsync, rename into place
    (and fsync the directory so the rename survives a power cut)."""
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(
                table,
                fh,
                compression=compression,
                use_dictionary=[c for c in DICTIONARY_COLUMNS if c in table.column_names],
                write_statistics=[c for c in _STATS_COLUMNS if c in table.column_names],
                # small row groups: compacted files are sorted by trace id, so a lookup
                # by trace id reads one group instead of the whole file
                row_group_size=ROW_GROUP_ROWS,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable_rename:
        fsync_dir(directory)


class ParquetBackend(LakeBackend):
    """Tables as directories of Parquet files on a local filesystem."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.location = root
        self._format = ds.ParquetFileFormat()
        os.makedirs(root, exist_ok=True)

    def table_dir(self, table: str) -> str:
        return os.path.join(self.root, table)

    def _files(self, table: str) -> list[str]:
        base = self.table_dir(table)
        out: list[str] = []
        stack = [base]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith((".", "_")):
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.name.endswith(".parquet"):
                    out.append(entry.path)
        return sorted(out)

    def files(self, table: str) -> list[str]:
        return self._files(table)

    def dataset(
        self, table: str, paths: Sequence[str] | None = None
    ) -> ds.FileSystemDataset | None:
        files = self._files(table) if paths is None else list(paths)
        if not files:
            return None
        partitioning = (
            ds.partitioning(_PARTITION_SCHEMA, flavor="hive") if table in PARTITIONED else None
        )
        dataset = ds.dataset(
            files,
            schema=SCHEMAS[table],
            format=self._format,
            partitioning=partitioning,
            partition_base_dir=self.table_dir(table),
        )
        assert isinstance(dataset, ds.FileSystemDataset)
        return dataset

    def _groups(self, table: str, data: pa.Table) -> list[tuple[str, pa.Table]]:
        """(directory, rows without partition columns) per partition."""
        base = self.table_dir(table)
        if table not in PARTITIONED:
            return [(base, data)]
        pairs = pa.table({"e": data.column("experiment"), "d": data.column("date")})
        keys = pairs.group_by(["e", "d"], use_threads=False).aggregate([]).to_pylist()
        out = []
        rows = data.drop_columns(["experiment", "date"])
        for key in keys:
            directory = os.path.join(
                base, f"experiment={_quote(key['e'])}", f"date={_quote(key['d'])}"
            )
            if len(keys) == 1:
                out.append((directory, rows))
            else:
                mask = pc.and_(
                    pc.equal(data.column("experiment"), key["e"]),
                    pc.equal(data.column("date"), key["d"]),
                )
                out.append((directory, rows.filter(mask)))
        return out

    def append(self, table: str, data: pa.Table, *, txn_id: str | None = None) -> list[str] | None:
        stem = txn_id or f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        written = []
        for directory, rows in self._groups(table, data):
            path = os.path.join(directory, f"part-{stem}.parquet")
            if txn_id is not None and os.path.exists(path):
                continue  # a retried batch: already committed
            # Trace rows are derived: a power cut losing their rename is repaired by
            # `compact`, so they skip the directory fsync (one of four per batch). Their
            # per-batch files are small and soon merged (zstd): snappy is a third cheaper
            # to write there (zstd's per-column setup dominates small files).
            derived = table == TRACES
            _write_atomic(
                rows,
                path,
                durable_rename=not derived,
                compression="snappy" if derived else "zstd",
            )
            written.append(path)
        return written

    def replace(self, table: str, remove: Sequence[str], data: pa.Table | None) -> list[str] | None:
        written = []
        if data is not None and data.num_rows:
            stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}-compacted"
            for directory, rows in self._groups(table, data):
                path = os.path.join(directory, f"part-{stem}.parquet")
                _write_atomic(rows, path)
                written.append(path)
        trash = os.path.join(self.root, TRASH, table)
        os.makedirs(trash, exist_ok=True)
        for path in remove:
            rel = os.path.relpath(path, self.table_dir(table)).replace(os.sep, "__")
            try:
                target = os.path.join(trash, f"{time.time_ns()}-{rel}")
                os.replace(path, target)
                os.utime(target)  # the retention counts from the move
            except FileNotFoundError:
                pass  # another compaction moved it first
        return written

    def remove_leftovers(self, older_than_seconds: float) -> list[str]:
        """Temporary ``.*.tmp`` files of writers that died mid-write (a live writer's file
        is renamed within seconds; ``compact`` passes minutes)."""
        cutoff = time.time() - older_than_seconds
        removed = []
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    if name.endswith(".tmp") and os.path.getmtime(path) < cutoff:
                        os.unlink(path)
                        removed.append(path)
                except FileNotFoundError:
                    pass  # renamed or removed meanwhile
        return sorted(removed)

    def vacuum(self, retention_hours: float, *, dry_run: bool) -> list[str]:
        """Delete compaction leftovers in ``_trash`` and crashed writers' temporary files
        older than the retention."""
        cutoff = time.time() - retention_hours * 3600
        doomed = []
        for directory, _, names in os.walk(self.root):
            in_trash = os.path.relpath(directory, self.root).split(os.sep)[0] == TRASH
            for name in names:
                path = os.path.join(directory, name)
                if (in_trash or name.endswith(".tmp")) and os.path.getmtime(path) < cutoff:
                    doomed.append(path)
        if not dry_run:
            for path in doomed:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return sorted(doomed)


def open_parquet_store(uri: StoreURI) -> LakeStore:
    """Factory registered for ``parquet://`` URIs."""
    parent = os.path.dirname(uri.path.rstrip(os.sep))
    if parent and not os.path.isdir(parent):
        raise ConfigError(f"Parent directory of Parquet store {uri.raw!r} does not exist: {parent}")
    if os.path.exists(uri.path) and not os.path.isdir(uri.path):
        raise ConfigError(f"Parquet store {uri.raw!r} is not a directory: {uri.path}")
    return LakeStore(ParquetBackend(uri.path), uri.raw)
