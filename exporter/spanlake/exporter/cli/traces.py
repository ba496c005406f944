"""``spanlake traces list|get``: browse traces in a store (table, tree, JSON, CSV)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timezone
from typing import Any

from spanlake.exporter.cli._common import (
    add_store_option,
    format_duration_ms,
    open_cli_store,
    table,
)
from spanlake.exporter.records import SpanRecord, Trace, TraceInfo


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    traces = subparsers.add_parser("traces", help="list and show traces")
    sub = traces.add_subparsers(dest="traces_command", metavar="ACTION")
    sub.required = True

    ls = sub.add_parser("list", help="search traces (newest first)")
    add_store_option(ls)
    ls.add_argument(
        "--experiment",
        action="append",
        metavar="NAME",
        help="experiment name (repeatable; default: all experiments)",
    )
    ls.add_argument(
        "--filter",
        default=None,
        metavar="EXPR",
        help="filter, e.g. \"status = 'ERROR' AND tags.env = 'prod'\"",
    )
    ls.add_argument(
        "--order-by",
        action="append",
        metavar="FIELD [ASC|DESC]",
        help="ordering (repeatable), e.g. 'execution_time_ms DESC'",
    )
    ls.add_argument("--max-results", type=int, default=100, metavar="N")
    ls.add_argument("--page-token", default=None)
    ls.add_argument("--format", choices=("table", "json", "csv"), default="table")
    ls.set_defaults(func=_list)

    get = sub.add_parser("get", help="show one trace as a span tree")
    add_store_option(get)
    get.add_argument("trace_id", metavar="TRACE_ID")
    get.add_argument("--format", choices=("tree", "json"), default="tree")
    get.set_defaults(func=_get)


def _list(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    try:
        page = store.search_traces(
            args.experiment, args.filter, args.order_by, args.max_results, args.page_token
        )
    finally:
        store.close()
    out = sys.stdout
    if args.format == "json":
        json.dump([t.to_dict() for t in page.traces], out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        _write_csv(page.traces)
    else:
        out.write(_list_table(page.traces) + "\n")
        if page.next_page_token:
            out.write(f"(more: --page-token {page.next_page_token})\n")
    return 0


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _list_table(traces: list[TraceInfo]) -> str:
    rows = [
        [
            t.trace_id,
            _when(t.request_time_ms),
            t.experiment,
            t.name or "-",
            t.state.value,
            format_duration_ms(t.execution_time_ms),
            str(t.token_usage.total_tokens) if t.token_usage.total_tokens else "-",
            (t.request_preview or "").replace("\n", " "),
        ]
        for t in traces
    ]
    return table(
        ["TRACE_ID", "TIME (UTC)", "EXPERIMENT", "NAME", "STATE", "DURATION", "TOKENS", "REQUEST"],
        rows,
    )


def _write_csv(traces: list[TraceInfo]) -> None:
    fields = [
        "trace_id",
        "experiment",
        "name",
        "state",
        "request_time_ms",
        "execution_time_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cost_usd",
        "span_count",
        "models",
        "tags",
        "metadata",
        "request_preview",
        "response_preview",
    ]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for t in traces:
        row: dict[str, Any] = {k: v for k, v in t.to_dict().items() if k in fields}
        row.update(t.token_usage.to_dict())
        row["state"] = t.state.value
        row["models"] = ";".join(t.models)
        row["tags"] = json.dumps(t.tags)
        row["metadata"] = json.dumps(t.metadata)
        writer.writerow({k: row.get(k) for k in fields})


def _get(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    try:
        trace = store.get_trace(args.trace_id)
    finally:
        store.close()
    if args.format == "json":
        json.dump(trace.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_tree(trace) + "\n")
    return 0


def _span_line(span: SpanRecord) -> str:
    duration = (
        format_duration_ms((span.end_time_ns - span.start_time_ns) / 1e6)
        if span.end_time_ns is not None
        else "in progress"
    )
    parts = [f"{span.name} [{span.span_type}]", duration]
    if span.model:
        parts.append(span.model)
    if span.token_usage is not None:
        u = span.token_usage
        parts.append(f"tokens {u.total_tokens} (in {u.input_tokens} / out {u.output_tokens})")
    if span.status == "ERROR":
        parts.append(f"ERROR: {span.status_message}" if span.status_message else "ERROR")
    return "  ".join(parts)


def render_tree(trace: Trace) -> str:
    """The trace as an indented span tree (orphans whose parent is missing shown at top)."""
    info = trace.info
    u = info.token_usage
    header = [
        f"Trace {info.trace_id}  [{info.state.value}]  experiment={info.experiment}",
        f"  {_when(info.request_time_ms)} UTC  duration {format_duration_ms(info.execution_time_ms)}"
        f"  spans {info.span_count}  tokens {u.total_tokens} (in {u.input_tokens} / out {u.output_tokens})"
        + (f"  cost ${info.cost_usd:.6f}" if info.cost_usd is not None else ""),
    ]
    if info.tags:
        header.append("  tags " + json.dumps(info.tags))
    if info.metadata:
        header.append("  metadata " + json.dumps(info.metadata))
    ids = {s.span_id for s in trace.spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in trace.spans:
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, span in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(prefix + ("└── " if last else "├── ") + _span_line(span))
            walk(span.span_id, prefix + ("    " if last else "│   "))

    walk(None, "")
    for a in trace.assessments:
        lines.append(
            f"{a.kind.value.lower()} {a.name} = {json.dumps(a.value)}"
            + (f"  ({a.rationale})" if a.rationale else "")
        )
    return "\n".join(header + lines)
