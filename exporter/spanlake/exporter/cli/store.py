"""``spanlake store compact|vacuum|copy``: maintain lake stores and move data between stores."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from spanlake.exporter.cli._common import add_store_option, open_cli_store
from spanlake.exporter.store import open_store
from spanlake.exporter.store.maintenance import (
    DEFAULT_RETENTION_HOURS,
    compact,
    copy_store,
    vacuum,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "store",
        help="maintain a store: compact, vacuum, copy",
        description="Maintain Parquet/Delta stores and copy data between stores.",
    )
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION")
    sub.required = True

    c = sub.add_parser("compact", help="merge small files, drop replayed rows (parquet/delta)")
    add_store_option(c)
    c.set_defaults(func=_compact)

    v = sub.add_parser("vacuum", help="delete unreferenced old files (parquet/delta)")
    add_store_option(v)
    v.add_argument(
        "--retention-hours",
        type=float,
        default=DEFAULT_RETENTION_HOURS,
        help=f"keep files removed less than this long ago (default {DEFAULT_RETENTION_HOURS:g})",
    )
    v.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    v.add_argument(
        "--force",
        action="store_true",
        help="allow a retention below the default (only when no reader or writer runs)",
    )
    v.set_defaults(func=_vacuum)

    cp = sub.add_parser("copy", help="copy everything from one store to another")
    cp.add_argument("--from", dest="source", required=True, metavar="URI", help="source store")
    cp.add_argument("--to", dest="target", required=True, metavar="URI", help="target store")
    cp.add_argument("--batch-size", type=int, default=10_000, help="spans per write")
    cp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cp.set_defaults(func=_copy)


def _compact(args: argparse.Namespace) -> int:
    with open_cli_store(args) as store:
        stats = compact(store)
    print(f"compacted {store.uri}: {stats['files_before']} files -> {stats['files_after']}")
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    with open_cli_store(args) as store:
        removed = vacuum(store, args.retention_hours, dry_run=args.dry_run, force=args.force)
    verb = "would delete" if args.dry_run else "deleted"
    for path in removed:
        print(path)
    print(f"{verb} {len(removed)} files from {store.uri}", file=sys.stderr)
    return 0


class ProgressBar:
    """A one-line progress bar on stderr (count and rate when the total is unknown)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._state: tuple[int, int | None] = (0, None)
        self._shown: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        self._state = (done, total)
        now = time.monotonic()
        if now - self._last < 0.1 and done != total and done != 0:
            return
        self._render(done, total, now)

    def _render(self, done: int, total: int | None, now: float) -> None:
        self._last = now
        self._shown = (done, total)
        rate = done / max(now - self.started, 1e-9)
        if total:
            filled = int(self.width * min(done / total, 1.0))
            bar = "#" * filled + "." * (self.width - filled)
            line = f"{self.label} [{bar}] {100 * done / total:5.1f}% {done:,}/{total:,} spans"
        else:
            line = f"{self.label} {done:,} spans"
        self.stream.write(f"\r{line}  {rate:,.0f} spans/s")
        self.stream.flush()

    def close(self) -> None:
        if self._state != self._shown:
            self._render(*self._state, time.monotonic())
        self.stream.write("\n")
        self.stream.flush()


def _copy(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print("spanlake: error: --batch-size must be positive", file=sys.stderr)
        return 2
    with open_store(args.source) as source, open_store(args.target) as target:
        bar = None if args.no_progress else ProgressBar("copy")
        try:
            stats = copy_store(source, target, batch_size=args.batch_size, progress=bar)
        finally:
            if bar is not None:
                bar.close()
    print(
        f"copied {stats.spans_written:,} new spans ({stats.spans_read:,} read), "
        f"{stats.assessments:,} assessments, {stats.experiments} experiments, "
        f"{stats.tags_changed} tag changes: {source.uri} -> {target.uri}"
    )
    return 0
