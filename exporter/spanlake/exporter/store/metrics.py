"""Trace analytics: what ``trace_metrics`` asks for and the table every store answers with.

A query buckets traces (or spans) by time and by up to a few group keys, and reports per
bucket and group: how many, how many failed, latency percentiles, tokens and cost. Each
store computes it where the data lives (SQL on SQLite, Arrow compute on the lake stores)
and hands back small partial rows; this module parses the query, finishes the rows the
same way for every store (ranks, cost from exact integer sums, order) and shapes them.

Semantics (the same on every store; the store suite checks the three agree):

- **Unit.** Traces, bucketed by ``request_time_ms``; with ``span_type`` among the group
  keys, spans instead (of the traces the filter selects), bucketed by span start time.
- **Group keys.** ``model`` / ``provider``: at trace level a trace counts once under
  *each* model (provider) it used (so group counts may add up to more than the traces;
  a trace without a model is in the null group); at span level the span's own model.
  ``tag.KEY`` / ``metadata.KEY`` / ``user`` / ``session``: the trace's tag / metadata
  value (``user`` / ``session`` are ``metadata.user`` / ``metadata.session``), null when
  absent. ``span_type``: the span's type.
- **Metrics.** ``count``; ``error_count`` (trace state / span status ERROR) and
  ``error_rate`` = error_count / count; ``latency_p50_ms`` / ``p90`` / ``p99`` by the
  nearest-rank method (an observed value: the smallest v with at least p% of the values
  <= v) over the trace's ``execution_time_ms`` (traces still in progress have none) or
  the span's duration; the token sums; ``cost_usd`` (the traces' costs, or at span level
  the price of each span's own usage; null when nothing in the group has a price).
  Span-level tokens are what each span reports, so a framework span wrapping the SDK's
  call and that call are both counted (each under its own span type).
- **Buckets** start at multiples of the interval since the epoch (UTC); only buckets with
  data are returned. Rows are ordered by bucket, then group values (nulls last).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from spanlake.exporter.errors import FilterError
from spanlake.exporter.pricing import price_for

if TYPE_CHECKING:
    import pandas
    import pyarrow

GroupKind = Literal["model", "provider", "span_type", "tag", "metadata"]

#: Percentiles reported, as integer percents (nearest-rank ranks stay integer arithmetic).
PERCENTILES = (50, 90, 99)
#: Token columns summed, in output order.
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "total_tokens",
)
#: Metric columns of every row, in output order (the JSON / Arrow contract).
METRIC_COLUMNS = (
    "count",
    "error_count",
    "error_rate",
    *(f"latency_p{p}_ms" for p in PERCENTILES),
    *TOKEN_COLUMNS,
    "cost_usd",
)
#: Trace costs are summed as integer nano-dollars so every store's sum is exact and equal.
NANO = 1_000_000_000
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
MAX_GROUP_KEYS = 4


@dataclass(frozen=True, slots=True)
class GroupKey:
    """One group-by dimension: ``name`` as the user wrote it (the output column)."""

    name: str
    kind: GroupKind
    #: The tag / metadata key for ``tag`` / ``metadata``; empty otherwise.
    key: str = ""


def parse_group_key(text: str) -> GroupKey:
    """``model`` | ``provider`` | ``span_type`` | ``tag.KEY`` | ``metadata.KEY`` | ``user``
    | ``session`` (``tags.KEY`` also works; a KEY with dots may be backticked)."""
    raw = text.strip()
    lowered = raw.lower()
    if lowered in ("model", "provider", "span_type"):
        return GroupKey(lowered, lowered)  # type: ignore[arg-type]
    if lowered in ("user", "session"):
        return GroupKey(lowered, "metadata", lowered)
    head, dot, rest = raw.partition(".")
    if dot and rest and head.lower() in ("tag", "tags", "metadata"):
        key = rest[1:-1] if len(rest) > 2 and rest[0] == rest[-1] == "`" else rest
        kind: GroupKind = "metadata" if head.lower() == "metadata" else "tag"
        return GroupKey(f"{'metadata' if kind == 'metadata' else 'tag'}.{key}", kind, key)
    raise FilterError(
        f"Invalid group_by {text!r}: expected model, provider, span_type, user, session, "
        "tag.KEY or metadata.KEY",
        token=text,
    )


def parse_group_by(group_by: str | Iterable[str] | None) -> tuple[GroupKey, ...]:
    """Group keys from a list or a comma-separated string (duplicates dropped)."""
    if group_by is None:
        return ()
    items = [group_by] if isinstance(group_by, str) else list(group_by)
    keys: list[GroupKey] = []
    for item in items:
        for part in str(item).split(","):
            if part.strip():
                key = parse_group_key(part)
                if key not in keys:
                    keys.append(key)
    if len(keys) > MAX_GROUP_KEYS:
        raise FilterError(f"Invalid group_by: at most {MAX_GROUP_KEYS} keys, got {len(keys)}")
    names = {k.kind for k in keys}
    if {"model", "provider"} <= names and "span_type" not in names:
        # A trace's models and providers are two separate sets: pairing them would invent
        # combinations (gpt-4o x anthropic). Spans carry real pairs.
        raise FilterError(
            "Invalid group_by: model and provider together need span_type (per span); "
            "a trace's models and providers are separate lists"
        )
    return tuple(keys)


def parse_interval(interval: str | int) -> int:
    """``1m`` / ``1h`` / ``1d`` (any ``N`` + s|m|h|d) or milliseconds -> milliseconds."""
    if isinstance(interval, int) and not isinstance(interval, bool):
        ms = interval
    else:
        m = _INTERVAL.match(str(interval))
        if m is None:
            raise FilterError(
                f"Invalid interval {interval!r}: expected e.g. 1m, 1h, 1d", token=str(interval)
            )
        ms = int(m.group(1)) * _UNITS_MS[m.group(2).lower()]
    if ms < 1000:
        raise FilterError(f"Invalid interval {interval!r}: at least 1s")
    return ms


def format_interval(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def to_epoch_ms(
    value: datetime | int | float | str | None, *, now_ms: int | None = None
) -> int | None:
    """A time bound as epoch ms: a datetime (naive = UTC), epoch ms, an ISO 8601 string,
    or a duration before now such as ``24h`` / ``7d``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise FilterError(f"Invalid time {value!r}")
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if _INTERVAL.match(text):
        base = now_ms if now_ms is not None else int(datetime.now(timezone.utc).timestamp() * 1000)
        return base - parse_interval(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"Invalid time {value!r}: expected ISO 8601 (2026-01-31T12:00:00Z), epoch ms, "
            "or a duration such as 24h",
            token=text,
        ) from None
    return to_epoch_ms(parsed)


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """What :meth:`Store.trace_metrics` computes (times in epoch ms, ``end`` exclusive)."""

    experiment_names: tuple[str, ...] | None = None
    filter_string: str | None = None
    group_by: tuple[GroupKey, ...] = ()
    interval_ms: int = 3_600_000
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def span_level(self) -> bool:
        """Spans are the unit when grouping by span type."""
        return any(k.kind == "span_type" for k in self.group_by)

    @property
    def group_names(self) -> list[str]:
        return [k.name for k in self.group_by]


@dataclass(slots=True)
class Partial:
    """What a store hands back for one (bucket, group): sums and the three percentile
    values; cost as nano-dollars (trace level) or per-model usage sums (span level)."""

    count: int = 0
    error_count: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(TOKEN_COLUMNS))
    percentiles: list[float | None] = field(default_factory=lambda: [None] * len(PERCENTILES))
    cost_nano: int | None = None
    #: span level: model -> [plain input, output, cache read, cache creation] token sums
    usage_by_model: dict[str, list[int]] = field(default_factory=dict)


Key = tuple[Any, ...]  # (bucket_start_ms, *group values)


def _span_cost(usage_by_model: dict[str, list[int]]) -> float | None:
    """Cost of per-model usage sums (what :meth:`Price.cost` gives summed over spans: the
    price is linear once each span's plain input is clamped at zero)."""
    total: float | None = None
    for model in sorted(usage_by_model):
        price = price_for(model)
        if price is None:
            continue
        plain, out, cache_read, cache_creation = usage_by_model[model]
        cost = (
            plain * price.input
            + out * price.output
            + cache_read * (price.input if price.cache_read is None else price.cache_read)
            + cache_creation
            * (price.input if price.cache_creation is None else price.cache_creation)
        ) / 1_000_000
        total = (total or 0.0) + cost
    return total


def _sort_key(key: Key) -> tuple[Any, ...]:
    return (key[0], *((v is None, "" if v is None else str(v)) for v in key[1:]))


class TraceMetrics:
    """The answer: one row per (time bucket, group). ``rows`` are plain dicts (the JSON
    shape of ``spanlake stats``); :meth:`to_arrow` / :meth:`to_pandas` give typed tables
    with ``bucket_start`` as a UTC timestamp and one column per group key."""

    def __init__(self, query: MetricsQuery, rows: list[dict[str, Any]]) -> None:
        self.query = query
        self.rows = rows

    @classmethod
    def from_partials(cls, query: MetricsQuery, partials: dict[Key, Partial]) -> TraceMetrics:
        rows: list[dict[str, Any]] = []
        names = query.group_names
        for key in sorted(partials, key=_sort_key):
            p = partials[key]
            if query.span_level:
                cost = _span_cost(p.usage_by_model)
            else:
                cost = None if p.cost_nano is None else p.cost_nano / NANO
            row: dict[str, Any] = {
                "bucket_start_ms": key[0],
                "bucket_start": _iso(key[0]),
                "group": dict(zip(names, key[1:], strict=True)),
                "count": p.count,
                "error_count": p.error_count,
                "error_rate": p.error_count / p.count if p.count else 0.0,
            }
            for percent, value in zip(PERCENTILES, p.percentiles, strict=True):
                row[f"latency_p{percent}_ms"] = None if value is None else float(value)
            row.update(zip(TOKEN_COLUMNS, p.tokens, strict=True))
            row["cost_usd"] = None if cost is None else round(cost, 9)
            rows.append(row)
        return cls(query, rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Any:
        return iter(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The ``spanlake stats --format json`` / ``/api/stats`` document."""
        q = self.query
        return {
            "unit": "span" if q.span_level else "trace",
            "interval": format_interval(q.interval_ms),
            "interval_ms": q.interval_ms,
            "group_by": q.group_names,
            "start_ms": q.start_ms,
            "end_ms": q.end_ms,
            "experiments": list(q.experiment_names) if q.experiment_names is not None else None,
            "filter": q.filter_string,
            "rows": self.rows,
        }

    def to_arrow(self) -> pyarrow.Table:
        import pyarrow as pa

        columns: dict[str, Any] = {
            "bucket_start": pa.array(
                [r["bucket_start_ms"] for r in self.rows], pa.timestamp("ms", tz="UTC")
            )
        }
        for name in self.query.group_names:
            columns[name] = pa.array([r["group"][name] for r in self.rows], pa.string())
        types = {"count": pa.int64(), "error_count": pa.int64(), "error_rate": pa.float64()}
        for name in METRIC_COLUMNS:
            kind = types.get(name, pa.int64() if name in TOKEN_COLUMNS else pa.float64())
            columns[name] = pa.array([r[name] for r in self.rows], kind)
        return pa.table(columns)

    def to_pandas(self) -> pandas.DataFrame:
        return self.to_arrow().to_pandas()


def _iso(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_query(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    group_by: str | Iterable[str] | None = None,
    interval: str | int = "1h",
    start: datetime | int | float | str | None = None,
    end: datetime | int | float | str | None = None,
) -> MetricsQuery:
    """Validate user arguments into a :class:`MetricsQuery` (FilterError names the bad one)."""
    names: tuple[str, ...] | None
    if experiment is None:
        names = None
    elif isinstance(experiment, str):
        names = (experiment,)
    else:
        names = tuple(experiment)
    start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise FilterError(f"Invalid time range: end ({end_ms}) must be after start ({start_ms})")
    return MetricsQuery(
        experiment_names=names,
        filter_string=filter.strip() if filter and filter.strip() else None,
        group_by=parse_group_by(group_by),
        interval_ms=parse_interval(interval),
        start_ms=start_ms,
        end_ms=end_ms,
    )
