"""Options and output helpers shared by the CLI subcommands."""

from __future__ import annotations

import argparse
import os

from spanlake.exporter.store import Store, open_store
from spanlake.exporter.store.uri import DEFAULT_STORE_URI, ENV_STORE


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        metavar="URI",
        help=f"store URI (default: ${ENV_STORE} or {DEFAULT_STORE_URI})",
    )


def open_cli_store(args: argparse.Namespace) -> Store:
    return open_store(args.store or os.environ.get(ENV_STORE) or DEFAULT_STORE_URI)


def format_duration_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table (no dependency; long cells are cut)."""
    cut = [[(c if len(c) <= 60 else c[:57] + "...") for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cut]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cut
    )
    return "\n".join(lines)
