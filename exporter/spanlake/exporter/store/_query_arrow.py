"""The filter AST (:mod:`spanlake.exporter.store.filter`) evaluated with pyarrow.compute.

Semantics follow the SQLite store exactly (the shared store suite checks it): SQL null
logic (a comparison with a missing value never matches), LIKE case-sensitive with ``%``/``_``
and no escape character, any-span semantics for ``model``/``provider``/``span.*`` (negative
operators mean *no* span matches), and assessments compared as SQLite compares
``json_extract`` values (booleans are 1/0; numbers sort before text).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spanlake.exporter.records import Assessment
from spanlake.exporter.store.filter import And, Comparison, Node, Or, like_to_regex

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_POSITIVE = {"!=": "=", "NOT LIKE": "LIKE", "NOT ILIKE": "ILIKE", "NOT IN": "IN"}
_SPAN_COLUMN = {
    "name": "name",
    "type": "span_type",
    "model": "model",
    "provider": "provider",
    "status": "status",
}

#: Reads spans columns for span-level filters: (columns) -> table with ``trace_id`` + them.
SpanReader = Callable[[list[str]], pa.Table]


def _like_pattern(value: str) -> str:
    # SQLite LIKE has no escape character; Arrow's treats backslash as one.
    return value.replace("\\", "\\\\")


def compare_array(array: pa.Array | pa.ChunkedArray, op: str, value: Any) -> pa.Array:
    """``array op value`` as a boolean array where null (SQL unknown) is False."""
    if op in ("IN", "NOT IN"):
        values = pa.array(list(value), type=_value_type(array.type, value))
        mask = pc.is_in(array, value_set=values)
        if op == "NOT IN":
            mask = pc.invert(mask)
    elif op in ("LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"):
        mask = pc.match_like(array, _like_pattern(value), ignore_case="ILIKE" in op)
        if op.startswith("NOT"):
            mask = pc.invert(mask)
    else:
        fn = {
            "=": pc.equal,
            "!=": pc.not_equal,
            "<": pc.less,
            ">": pc.greater,
            "<=": pc.less_equal,
            ">=": pc.greater_equal,
        }[op]
        mask = fn(array, value)
    return pc.and_(pc.fill_null(mask, False), pc.is_valid(array))


def _value_type(array_type: pa.DataType, values: Iterable[Any]) -> pa.DataType:
    if pa.types.is_integer(array_type) and any(isinstance(v, float) for v in values):
        return pa.float64()
    return array_type


class TraceView:
    """The materialised traces table plus flattened views of its map/list columns, built
    once per table version so each query is a few vectorised kernels (no hashing)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._flat: dict[str, tuple[pa.Array, pa.Array | None, pa.Array]] = {}

    def flat(self, column: str) -> tuple[pa.Array, pa.Array | None, pa.Array]:
        """(entry values, entry keys or None, row offsets) of a list or map column."""
        found = self._flat.get(column)
        if found is None:
            array = self.table.column(column).combine_chunks()
            offsets = array.offsets
            if pa.types.is_map(array.type):
                keys = pc.list_flatten(pa.ListArray.from_arrays(offsets, array.keys))
                values = pc.list_flatten(pa.ListArray.from_arrays(offsets, array.items))
            else:
                keys, values = None, pc.list_flatten(array)
            offsets = pc.subtract(offsets.cast(pa.int64()), offsets[0].cast(pa.int64()))
            found = (values, keys, offsets)
            self._flat[column] = found
        return found

    @staticmethod
    def rows_any(offsets: pa.Array, entry_hit: pa.Array) -> pa.Array:
        """Per row: does any of its entries hit? (prefix sums over the entry mask)."""
        prefix = pa.concat_arrays(
            [pa.array([0], pa.int64()), pc.cumulative_sum(entry_hit.cast(pa.int64()))]
        )
        n = len(offsets) - 1
        ends = prefix.take(offsets.slice(1, n))
        starts = prefix.take(offsets.slice(0, n))
        return pc.greater(pc.subtract(ends, starts), 0)


def _sql_value(value: Any) -> Any:
    """A JSON value as SQLite's ``json_extract`` hands it to SQL."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


def _rank(value: Any) -> int:
    return 0 if value is None else 1 if isinstance(value, (int, float)) else 2


def sql_compare(left: Any, op: str, right: Any) -> bool:
    """SQLite's comparison of two SQL values (NULL never matches; numbers < text)."""
    if left is None:
        return False
    if op in ("IN", "NOT IN"):
        found = any(sql_compare(left, "=", _sql_value(v)) for v in right)
        return found if op == "IN" else not found
    if op in ("LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"):
        text = left if isinstance(left, str) else _sql_text(left)
        matched = bool(like_to_regex(right, case_insensitive="ILIKE" in op).fullmatch(text))
        return matched if not op.startswith("NOT") else not matched
    right = _sql_value(right)
    lr, rr = _rank(left), _rank(right)
    key_l: Any = left if lr == rr else lr
    key_r: Any = right if lr == rr else rr
    return bool(_OPERATORS[op](key_l, key_r))


def _sql_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


class Evaluator:
    """Evaluates one filter over the materialised traces table of a lake store."""

    def __init__(
        self,
        view: TraceView,
        read_spans: SpanReader,
        assessments: Callable[[], Sequence[Assessment]],
    ) -> None:
        self.view = view
        self.traces = view.table
        self.read_spans = read_spans
        self.assessments = assessments

    def mask(self, node: Node) -> pa.Array:
        if isinstance(node, And):
            out = self.mask(node.items[0])
            for item in node.items[1:]:
                out = pc.and_(out, self.mask(item))
            return out
        if isinstance(node, Or):
            out = self.mask(node.items[0])
            for item in node.items[1:]:
                out = pc.or_(out, self.mask(item))
            return out
        return self._comparison(node)

    def _comparison(self, c: Comparison) -> pa.Array:
        f = c.field
        t = self.traces
        if f.kind == "trace":
            return compare_array(t.column(f.key), c.op, c.value)
        if f.kind in ("tag", "metadata"):
            # keys are unique per trace: "the value of key k matches" is "an entry with
            # key k and a matching value exists"; an absent key never matches.
            values, keys, offsets = self.view.flat("tags" if f.kind == "tag" else "metadata")
            assert keys is not None
            hit = pc.and_(pc.equal(keys, f.key), compare_array(values, c.op, c.value))
            return TraceView.rows_any(offsets, hit)
        op = _POSITIVE.get(c.op, c.op)
        if f.kind in ("model", "provider"):
            values, _, offsets = self.view.flat("models" if f.kind == "model" else "providers")
            any_hit = TraceView.rows_any(offsets, compare_array(values, op, c.value))
            return pc.invert(any_hit) if c.negative else any_hit
        if f.kind == "span":
            ids = self._span_trace_ids(f.key, f.attr, op, c.value)
            hit = pc.is_in(t.column("trace_id"), value_set=ids)
            return pc.invert(hit) if c.negative else hit
        return self._assessment_mask(c, op)

    def _span_trace_ids(self, key: str, attr: str, op: str, value: Any) -> pa.Array:
        if key != "attributes":
            column = _SPAN_COLUMN[key]
            spans = self.read_spans([column])
            hit = compare_array(spans.column(column), op, value)
            return pc.unique(pc.filter(spans.column("trace_id"), hit))
        spans = self.read_spans(["attributes"])
        # Only rows mentioning the key can match; parse just those.
        candidates = spans.filter(
            pc.match_substring(spans.column("attributes"), orjson.dumps(attr).decode())
        )
        ids = set()
        for trace_id, text in zip(
            candidates.column("trace_id").to_pylist(),
            candidates.column("attributes").to_pylist(),
            strict=True,
        ):
            attrs = orjson.loads(text) if text else {}
            if attr in attrs and sql_compare(_sql_value(attrs[attr]), op, value):
                ids.add(trace_id)
        return pa.array(sorted(ids), pa.string())

    def _assessment_mask(self, c: Comparison, op: str) -> pa.Array:
        kind = "EXPECTATION" if c.field.kind == "expectation" else "FEEDBACK"
        named = [a for a in self.assessments() if a.kind.value == kind and a.name == c.field.key]
        matching = {a.trace_id for a in named if sql_compare(_sql_value(a.value), op, c.value)}
        ids = self.traces.column("trace_id")
        hit = pc.is_in(ids, value_set=pa.array(sorted(matching), pa.string()))
        if not c.negative:
            return hit
        having = pc.is_in(ids, value_set=pa.array(sorted({a.trace_id for a in named}), pa.string()))
        return pc.and_(pc.invert(hit), having)


def _sort_keys(
    table: pa.Table, order: Sequence[tuple[str, bool]]
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """A sortable table and its keys: each field (nulls last, as SQLite's ``IS NULL``
    prefix does), then trace_id ascending."""
    keys: list[tuple[str, str]] = []
    columns: dict[str, pa.Array | pa.ChunkedArray] = {"trace_id": table.column("trace_id")}
    for n, (name, ascending) in enumerate(order):
        column = table.column(name)
        if column.null_count:
            columns[f"_null{n}"] = pc.is_null(column).cast(pa.int8())
            keys.append((f"_null{n}", "ascending"))
        columns[f"_key{n}"] = column
        keys.append((f"_key{n}", "ascending" if ascending else "descending"))
    keys.append(("trace_id", "ascending"))
    return pa.table(columns), keys


def order_indices(table: pa.Table, order: Sequence[tuple[str, bool]], limit: int) -> pa.Array:
    """Row indices of the first ``limit`` rows in order (nulls last, then trace_id ASC)."""
    n = table.num_rows
    if limit < n and order:
        # Top-k on the first key alone (cheap), widened to every row tying with the k-th,
        # then a full sort of just those rows.
        name, ascending = order[0]
        column = table.column(name)
        if column.null_count == 0:
            direction = "ascending" if ascending else "descending"
            top = pc.select_k_unstable(
                pa.table({"k": column}), k=limit, sort_keys=[("k", direction)]
            )
            values = column.take(top)
            bound = pc.max(values) if ascending else pc.min(values)
            keep = pc.less_equal(column, bound) if ascending else pc.greater_equal(column, bound)
            candidates = pc.indices_nonzero(keep)
            sortable, keys = _sort_keys(table.take(candidates), order)
            return candidates.take(pc.sort_indices(sortable, sort_keys=keys)[:limit])
    sortable, keys = _sort_keys(table, order)
    if limit >= n:
        return pc.sort_indices(sortable, sort_keys=keys)
    top = pc.select_k_unstable(sortable, k=limit, sort_keys=keys)
    return top.take(pc.sort_indices(sortable.take(top), sort_keys=keys))
