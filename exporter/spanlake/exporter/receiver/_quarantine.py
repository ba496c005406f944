"""``spanlake serve --replay-quarantine``: retry the requests the store once refused.

A logged request that the store refused for good (not a transient fault) is kept as a
``quarantine-*.wal`` file in its log slot (see ``_wal``). Once the cause is fixed (a new
version, a repaired store, a schema change), this replays every such file of a
``--wal-dir`` into the store by the same decode and mapping as at reception, and deletes
a file only after its spans are stored. The store dedupes, so running it twice is harmless.
Safe beside running receivers: they never touch a quarantine file once it is written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._ingest import logged_records, redaction_from
from spanlake.exporter.receiver._wal import quarantined, read_quarantined
from spanlake.exporter.store.base import Store

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayReport:
    """What a quarantine replay did."""

    files: int = 0
    requests: int = 0
    spans: int = 0
    new_spans: int = 0
    #: quarantine files still refused, with the reason (kept on disk)
    failed: dict[str, str] = field(default_factory=dict)


def replay_quarantine(store: Store, config: ReceiverConfig, wal_dir: str) -> ReplayReport:
    """Store every quarantined request under ``wal_dir``; delete each file once stored."""
    report = ReplayReport()
    redaction = redaction_from(config)
    for path in quarantined(wal_dir):
        report.files += 1
        try:
            entries = read_quarantined(path)
            records = [r for entry in entries for r in logged_records(entry, config, redaction)]
            new = store.write_spans(records) if records else 0
        except Exception as exc:
            report.failed[path] = f"{type(exc).__name__}: {exc}"
            logger.error("quarantined request %s still refused: %s", path, report.failed[path])
            continue
        report.requests += len(entries)
        report.spans += len(records)
        report.new_spans += new
        os.unlink(path)
        logger.info("quarantined request %s: %d span(s) stored", path, len(records))
    return report
