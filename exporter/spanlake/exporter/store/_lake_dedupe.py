"""Which row wins when a lake table holds several for one key (vectorised, Arrow only).

The tables are append-only, so replays and re-derivations leave duplicates: readers keep the
winning trace row, ``compact`` rewrites each table with winners only.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from spanlake.exporter.store._lake_backend import ASSESSMENTS, SPANS, TRACES


def winners(rows: pa.Table) -> pa.Table:
    """One row per trace: the one built from the most spans + tag overrides, then the
    latest (vectorised: sort, keep the first row of each trace id)."""
    n = rows.num_rows
    ids = rows.column("trace_id")
    if n == 0 or pc.count_distinct(ids).as_py() == n:
        return rows.combine_chunks()
    order = pc.sort_indices(
        pa.table(
            {
                "t": ids,
                "b": pc.add(rows.column("span_count"), rows.column("tag_override_count")),
                "c": rows.column("computed_time_ns"),
            }
        ),
        sort_keys=[("t", "ascending"), ("b", "descending"), ("c", "descending")],
    )
    sorted_ids = ids.take(order)
    changed = pc.not_equal(sorted_ids.slice(1), sorted_ids.slice(0, n - 1))
    first = (
        pa.concat_arrays([pa.array([True]), *changed.chunks])
        if isinstance(changed, pa.ChunkedArray)
        else pa.concat_arrays([pa.array([True]), changed])
    )
    return rows.take(order.filter(first)).combine_chunks()


def dedupe(table: str, data: pa.Table) -> pa.Table:
    """Keep one row per key: first span per (trace_id, span_id), winning trace row, latest
    assessment per id; override and experiment logs are kept whole."""
    if data.num_rows == 0:
        return data
    if table == SPANS:
        keyed = data.append_column("_i", pa.array(range(data.num_rows), pa.int64()))
        first = keyed.group_by(["trace_id", "span_id"], use_threads=False).aggregate(
            [("_i", "min")]
        )
        # Clustered by trace: row-group statistics then prune get_trace reads.
        return data.take(first.column("_i_min")).sort_by(
            [("trace_id", "ascending"), ("start_time_ns", "ascending")]
        )
    if table == TRACES:
        return winners(data)
    if table == ASSESSMENTS:
        order = pc.sort_indices(data, sort_keys=[("logged_time_ns", "descending")])
        ranked = data.take(order).append_column("_i", pa.array(range(data.num_rows), pa.int64()))
        first = ranked.group_by("assessment_id", use_threads=False).aggregate([("_i", "min")])
        return ranked.take(first.column("_i_min")).drop_columns(["_i"])
    return data
