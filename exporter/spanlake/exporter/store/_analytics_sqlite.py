"""``trace_metrics`` on the SQLite store: the grouping, sums and percentiles run in SQL.

One SELECT picks the rows (the search filter compiled as in
:meth:`SQLiteStore.search_traces`); a GROUP BY over it sums them, and ``row_number()`` over
each (bucket, group) ordered by latency picks the nearest-rank percentiles, so only a few
rows per group ever reach Python. Semantics: :mod:`spanlake.exporter.store.metrics`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from spanlake.exporter.store.filter import Node, parse_filter
from spanlake.exporter.store.metrics import (
    NANO,
    PERCENTILES,
    TOKEN_COLUMNS,
    Key,
    MetricsQuery,
    Partial,
)

#: Compiles a filter AST to SQL over ``t`` (traces) / ``e`` (experiments), adding params.
Compiler = Callable[[Node, list[Any]], str]


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _base(query: MetricsQuery, compile_filter: Compiler) -> tuple[str, list[Any], int]:
    """The row-selecting SELECT (columns b, g0.., err, lat, tokens.., cost parts) and its
    params; returns (sql, params, number of group columns)."""
    params: list[Any] = []
    span = query.span_level
    iv = int(query.interval_ms)
    when = "(sp.start_time_ns / 1000000)" if span else "t.request_time_ms"
    columns = [f"{when} - {when} % {iv} AS b"]
    joins: list[str] = []
    for i, key in enumerate(query.group_by):
        if key.kind == "span_type":
            expr = "sp.span_type"
        elif key.kind in ("model", "provider"):
            if span:
                expr = f"sp.{key.kind}"
            else:  # each model (provider) the trace used; none -> one NULL row
                joins.append(f"LEFT JOIN json_each(t.{key.kind}s) j{i}")
                expr = f"j{i}.value"
        else:
            params.append(_json_path(key.key))
            expr = f"json_extract({'t.tags' if key.kind == 'tag' else 't.metadata'}, ?)"
        columns.append(f"{expr} AS g{i}")
    if span:
        columns += [
            "sp.status = 'ERROR' AS err",
            "(sp.end_time_ns - sp.start_time_ns) / 1e6 AS lat",
            *(f"sp.{c} AS k{n}" for n, c in enumerate(TOKEN_COLUMNS)),
            "sp.has_usage AS hu",
            "sp.model AS pm",
            "max(sp.input_tokens - sp.cache_read_input_tokens"
            " - sp.cache_creation_input_tokens, 0) AS plain",
        ]
        source = (
            "spans sp JOIN traces t ON t.trace_id = sp.trace_id "
            "JOIN experiments e ON e.experiment_id = t.experiment_id"
        )
    else:
        columns += [
            "t.state = 'ERROR' AS err",
            "t.execution_time_ms AS lat",
            *(f"t.{c} AS k{n}" for n, c in enumerate(TOKEN_COLUMNS)),
            f"CAST(round(t.cost_usd * {NANO}) AS INTEGER) AS nano",
        ]
        source = "traces t JOIN experiments e ON e.experiment_id = t.experiment_id"
    where: list[str] = []
    if query.experiment_names is not None:
        where.append(f"e.name IN ({', '.join('?' * len(query.experiment_names))})")
        params.extend(query.experiment_names)
    scale = 1_000_000 if span else 1
    column = "sp.start_time_ns" if span else "t.request_time_ms"
    if query.start_ms is not None:
        where.append(f"{column} >= ?")
        params.append(query.start_ms * scale)
    if query.end_ms is not None:
        where.append(f"{column} < ?")
        params.append(query.end_ms * scale)
    node = parse_filter(query.filter_string)
    if node is not None:
        where.append(compile_filter(node, params))
    sql = f"SELECT {', '.join(columns)} FROM {source} {' '.join(joins)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params, len(query.group_by)


def sqlite_trace_metrics(
    conn: sqlite3.Connection, query: MetricsQuery, compile_filter: Compiler
) -> dict[Key, Partial]:
    """The (bucket, group) -> :class:`Partial` map for ``query``, computed in SQL."""
    if query.experiment_names is not None and not query.experiment_names:
        return {}
    base, params, groups = _base(query, compile_filter)
    keys = ", ".join(["b", *(f"g{i}" for i in range(groups))])
    tokens = ", ".join(f"sum(k{n})" for n in range(len(TOKEN_COLUMNS)))
    cost = ", NULL" if query.span_level else ", sum(nano)"
    picks = ", ".join(
        f"max(CASE WHEN rn = ({p} * n + 99) / 100 THEN lat END) AS p{p}" for p in PERCENTILES
    )
    wanted = " OR ".join(f"rn = ({p} * n + 99) / 100" for p in PERCENTILES)
    # Two statements, not one CTE read twice: SQLite's window sort is the costly step, so
    # it gets the narrow (keys, latency) rows only, and the sums a plain GROUP BY.
    agg_sql = f"SELECT {keys}, count(*), sum(err), {tokens}{cost} FROM ({base}) GROUP BY {keys}"
    pct_sql = (
        f"SELECT {keys}, {picks} FROM (SELECT {keys}, lat, row_number() OVER w AS rn, "
        f"count(*) OVER p AS n FROM ({base}) WHERE lat IS NOT NULL "
        f"WINDOW p AS (PARTITION BY {keys}), w AS (p ORDER BY lat)) "
        f"WHERE {wanted} GROUP BY {keys}"
    )
    out: dict[Key, Partial] = {}
    width = 1 + groups
    n_tokens = len(TOKEN_COLUMNS)
    for row in conn.execute(agg_sql, params):
        key: Key = tuple(row[:width])
        count, errors = row[width], row[width + 1]
        rest = row[width + 2 :]
        out[key] = Partial(
            count=int(count),
            error_count=int(errors or 0),
            tokens=[int(v or 0) for v in rest[:n_tokens]],
            cost_nano=None if rest[n_tokens] is None else int(rest[n_tokens]),
        )
    for row in conn.execute(pct_sql, params):
        partial = out.get(tuple(row[:width]))
        if partial is not None:
            partial.percentiles = list(row[width:])
    if query.span_level and out:
        cost_sql = (
            f"SELECT {keys}, pm, sum(plain), sum(k1), sum(k2), sum(k3) FROM ({base}) "
            f"WHERE hu AND pm IS NOT NULL GROUP BY {keys}, pm"
        )
        for row in conn.execute(cost_sql, params):
            partial = out.get(tuple(row[:width]))
            if partial is not None:
                partial.usage_by_model[row[width]] = [int(v or 0) for v in row[width + 1 :]]
    return out
