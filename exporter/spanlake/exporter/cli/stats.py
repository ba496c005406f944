"""``spanlake stats``: trace analytics per time bucket and group, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spanlake.exporter.cli._common import add_store_option, format_duration_ms, open_cli_store
from spanlake.exporter.cli._common import table as text_table
from spanlake.exporter.errors import ConfigError
from spanlake.exporter.store.metrics import TraceMetrics, build_query


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = subparsers.add_parser(
        "stats",
        help="trace counts, error rate, latency percentiles, tokens and cost over time",
        description="Per time bucket and group: traces (or spans, with --group-by "
        "span_type), errors, latency p50/p90/p99, tokens and cost, computed in the store.",
    )
    add_store_option(stats)
    stats.add_argument(
        "--experiment",
        action="append",
        metavar="NAME",
        help="experiment name (repeatable; default: all experiments)",
    )
    stats.add_argument("--filter", default=None, metavar="EXPR", help="the search filter grammar")
    stats.add_argument(
        "--group-by",
        action="append",
        metavar="KEY",
        help="model, provider, span_type, user, session, tag.KEY, metadata.KEY "
        "(repeatable or a comma list)",
    )
    stats.add_argument(
        "--interval", default="1h", help="bucket size: 1m, 1h, 1d (any N + s/m/h/d; default 1h)"
    )
    stats.add_argument(
        "--since",
        default=None,
        metavar="DURATION",
        help="only the last DURATION, e.g. 24h, 7d (same as --start DURATION)",
    )
    stats.add_argument(
        "--start", default=None, metavar="TIME", help="from (inclusive): ISO 8601 or epoch ms"
    )
    stats.add_argument(
        "--end", default=None, metavar="TIME", help="until (exclusive): ISO 8601 or epoch ms"
    )
    stats.add_argument("--format", choices=("table", "json"), default="table")
    stats.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.since and args.start:
        raise ConfigError("give --since or --start, not both")
    query = build_query(
        args.experiment,
        args.filter,
        args.group_by,
        args.interval,
        args.since or args.start,
        args.end,
    )
    store = open_cli_store(args)
    try:
        result = store.trace_metrics(query)
    finally:
        store.close()
    if args.format == "json":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(result) + "\n")
    return 0


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def render_table(result: TraceMetrics) -> str:
    """The rows as an aligned text table (times in UTC)."""
    if not result.rows:
        return "no traces in range"
    names = result.query.group_names
    unit = "spans" if result.query.span_level else "traces"
    headers = [
        "bucket (UTC)",
        *names,
        unit,
        "errors",
        "err %",
        "p50",
        "p90",
        "p99",
        "tokens in",
        "out",
        "cache rd",
        "cache wr",
        "cost",
    ]
    rows = []
    for r in result.rows:
        rows.append(
            [
                r["bucket_start"].replace("T", " ").replace("Z", ""),
                *("-" if r["group"][n] is None else str(r["group"][n]) for n in names),
                _num(r["count"]),
                _num(r["error_count"]),
                f"{100 * r['error_rate']:.1f}",
                format_duration_ms(r["latency_p50_ms"]),
                format_duration_ms(r["latency_p90_ms"]),
                format_duration_ms(r["latency_p99_ms"]),
                _num(r["input_tokens"]),
                _num(r["output_tokens"]),
                _num(r["cache_read_input_tokens"]),
                _num(r["cache_creation_input_tokens"]),
                "-" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}",
            ]
        )
    return text_table(headers, rows)
