"""The lake's tables and the backend interface the Parquet and Delta stores implement.

Five append-only tables under the store root: ``spans`` and ``traces`` (partitioned by
``experiment`` and UTC ``date``), ``assessments``, ``tag_overrides``, ``experiments``. A
backend only knows how to list, read and atomically add or swap files of a table; the store
logic (:mod:`._lake`) is the same over both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.dataset as ds

from spanlake.exporter.store import _arrow

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
#: Low-cardinality columns worth dictionary-encoding in both backends (JSON columns are not).
DICTIONARY_COLUMNS = (
    "name",
    "span_type",
    "kind",
    "status",
    "model",
    "provider",
    "service_name",
    "scope",
    "state",
    "key",
)


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

    def remove_leftovers(self, older_than_seconds: float) -> list[str]:
        """Delete what crashed writers left (temporary files) untouched for this long;
        returns the paths. Backends without such files keep the default."""
        return []

    def optimize(self) -> None:  # noqa: B027 - optional hook
        """Backend-specific maintenance after :meth:`LakeStore.compact`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def subset(dataset: ds.FileSystemDataset, paths: Iterable[str]) -> ds.FileSystemDataset:
    """The dataset restricted to some files (partition columns preserved)."""
    wanted = set(paths)
    fragments = [f for f in dataset.get_fragments() if f.path in wanted]
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)


def new_files(backend: LakeBackend, table: str, seen: set[str]) -> ds.FileSystemDataset | None:
    """The table's files not in ``seen`` (which they are then added to), or None."""
    new = [f for f in backend.files(table) if f not in seen]
    if not new:
        return None
    dataset = backend.dataset(table, new)
    seen.update(new)
    return dataset
