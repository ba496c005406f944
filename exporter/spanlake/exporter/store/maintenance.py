"""Store maintenance: compaction, vacuum (with a retention safeguard) and store-to-store copy.

Compaction and vacuum apply to the lake stores (Parquet, Delta); copy works between any two
stores (e.g. SQLite -> Delta), through the :class:`Store` interface only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spanlake.exporter.errors import ConfigError
from spanlake.exporter.store._lake import LakeStore
from spanlake.exporter.store.base import Store

#: Files a reader of an older snapshot may still open are kept this long (Delta's default).
DEFAULT_RETENTION_HOURS = 168.0

#: progress(done_spans, total_spans or None)
Progress = Callable[[int, "int | None"], None]


def _lake(store: Store, action: str) -> LakeStore:
    if not isinstance(store, LakeStore):
        raise ConfigError(f"{action} applies to parquet:// and delta:// stores, not {store.uri}")
    return store


def compact(store: Store) -> dict[str, int]:
    """Merge small files, drop replayed spans and superseded trace rows; returns file counts."""
    return _lake(store, "compact").compact()


def vacuum(
    store: Store,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    *,
    dry_run: bool = False,
    force: bool = False,
) -> list[str]:
    """Delete files no longer referenced, older than ``retention_hours``.

    A shorter retention than the default can delete files that a running reader (or a Delta
    time-travel query) still needs, so it is refused unless ``force`` is set."""
    if retention_hours < 0:
        raise ConfigError(f"retention must be >= 0 hours, got {retention_hours}")
    if retention_hours < DEFAULT_RETENTION_HOURS and not force:
        raise ConfigError(
            f"refusing to vacuum with a retention of {retention_hours:g} h (< {DEFAULT_RETENTION_HOURS:g} h): "
            "readers of older snapshots could lose files. Pass force=True (--force) if no "
            "reader or writer is running."
        )
    return _lake(store, "vacuum").vacuum(retention_hours, dry_run=dry_run)


@dataclass
class CopyStats:
    experiments: int = 0
    spans_read: int = 0
    spans_written: int = 0
    assessments: int = 0
    tags_changed: int = 0


def _all_tags(store: Store) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    token = None
    while True:
        page = store.search_traces(max_results=1000, page_token=token)
        for info in page.traces:
            tags[info.trace_id] = info.tags
        token = page.next_page_token
        if token is None:
            return tags


def copy_store(
    source: Store, target: Store, *, batch_size: int = 10_000, progress: Progress | None = None
) -> CopyStats:
    """Copy experiments, spans, assessments and manual trace tags from ``source`` into
    ``target``. Idempotent: spans and assessments already in the target are skipped."""
    stats = CopyStats()
    for experiment in source.list_experiments():
        target.get_or_create_experiment(experiment.name)
        stats.experiments += 1
    total = source.count_spans() if isinstance(source, LakeStore) else None
    if progress:
        progress(0, total)
    for batch in source.iter_spans(batch_size=batch_size):
        stats.spans_written += target.write_spans(batch)
        stats.spans_read += len(batch)
        if progress:
            progress(stats.spans_read, total)
    for assessment in source.iter_assessments():
        target.log_assessment(assessment)
        stats.assessments += 1
    wanted, have = _all_tags(source), _all_tags(target)
    for trace_id, tags in wanted.items():
        current = have.get(trace_id, {})
        for key, value in tags.items():
            if current.get(key) != value:
                target.set_trace_tag(trace_id, key, value)
                stats.tags_changed += 1
        for key in current.keys() - tags.keys():
            target.delete_trace_tag(trace_id, key)
            stats.tags_changed += 1
    return stats
