"""Store benchmark: write throughput (spans/s, one core) and search latency over 1M spans.

Everything is measured in the same run next to raw floors, and reported as ratios:

* floors: building the Arrow table from the SpanRecords (our columnar builder, per batch
  as the stores call it) and from Python dicts (``pa.Table.from_pylist``), a pyarrow
  Parquet zstd write, a deltalake append (one append of everything, and batched like the
  store commits);
* stores: ``write_spans`` in exporter-sized batches into SQLite, Parquet and Delta, fresh
  directory each round, rounds interleaved, median reported;
* search: a lake of ``--search-spans`` (default 1M) spans written through the store, then
  filtered ``search_traces`` calls and a token-per-model group-by over the span files
  (pyarrow, DuckDB through Arrow, Polars), warm medians, before and after ``compact``;
* analytics: ``trace_metrics`` (``spanlake stats``) over ``--analytics-spans`` (default 1M)
  spans in each of SQLite, Parquet and Delta: the per-model, per-hour table (goal: under
  200 ms), per hour without groups, with a filter, and per span type (span level), cold
  (first call of a freshly opened store) and warm medians.

Run: ``python bench/bench_stores.py`` (``--quick`` for a small smoke run). Pinned to one core
(``os.sched_setaffinity``) for the throughput part unless ``--all-cores``; searches use
every core (DuckDB/Polars/Arrow are multi-threaded readers).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from store.factories import make_trace

from spanlake.exporter.records import SpanRecord
from spanlake.exporter.store import open_store
from spanlake.exporter.store._arrow import spans_to_table
from spanlake.exporter.store._lake import LakeStore
from spanlake.exporter.store.maintenance import compact
from spanlake.exporter.store.metrics import build_query


def realistic_trace(n: int) -> list[SpanRecord]:
    """Varied traces: 1-3 LLM calls over three models, some errors, some nested SDK spans."""
    return make_trace(
        n,
        llm_calls=1 + n % 3,
        status="ERROR" if n % 20 == 0 else "OK",
        tokens=200 + (n * 37) % 4000,
        nested_llm=n % 5 == 0,
        tags={"env": "prod" if n % 2 else "dev"},
        metadata={"user": f"user-{n % 100}"},
    )


def batches(first_trace: int, total_spans: int, batch: int) -> Iterator[list[SpanRecord]]:
    """Exporter-like batches: spans in arrival order, a trace may straddle two batches."""
    pending: list[SpanRecord] = []
    n, produced = first_trace, 0
    while produced < total_spans:
        spans = realistic_trace(n)
        n += 1
        # children end before their root: the root arrives last
        pending.extend(spans[1:] + spans[:1])
        produced += len(spans)
        while len(pending) >= batch:
            yield pending[:batch]
            pending = pending[batch:]
    if pending:
        yield pending


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, min) seconds over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def rss_mb() -> float:
    """Current resident set size (Linux), MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- throughput -------------------------------------------------------------------------------
def throughput(
    pool_spans: int, batch: int, rounds: int, work: Path
) -> dict[str, list[tuple[float, float]]]:
    pool = [b for b in batches(0, pool_spans, batch)]
    flat = [s for b in pool for s in b]
    n = len(flat)
    spans_to_table(flat[:10])  # warm imports
    # The pool is the harness's data (an exporter frees spans once written): keep the
    # garbage collector from rescanning it, which otherwise lands at random in one
    # store's timing (one full collection over 100k spans costs ~0.3 s).
    gc.collect()
    gc.freeze()
    results: dict[str, list[tuple[float, float]]] = {}
    clock: dict[str, float] = {}

    def start() -> None:
        clock["wall"], clock["cpu"] = time.perf_counter(), time.process_time()

    def record(name: str) -> None:
        wall = time.perf_counter() - clock["wall"]
        cpu = time.process_time() - clock["cpu"]
        results.setdefault(name, []).append((n / wall, n / cpu))

    for r in range(rounds):
        gc.collect()
        start()
        parts = [spans_to_table(b) for b in pool]  # as the stores build them: per batch
        record("floor: Arrow table from SpanRecords (our builder)")
        table = pa.concat_tables(parts)
        del parts

        rows = [
            {
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "name": s.name,
                "model": s.model,
                "attributes": s.attributes,
                "start_time_ns": s.start_time_ns,
            }
            for s in flat
        ]
        start()
        pa.Table.from_pylist(rows)
        record("floor: pa.Table.from_pylist (dicts, 6 keys)")
        del rows

        path = work / f"floor-{r}.parquet"
        start()
        pq.write_table(table, path, compression="zstd")
        record("floor: pyarrow Parquet zstd write")

        start()
        write_deltalake(str(work / f"floor-delta-{r}"), table, mode="append")
        record("floor: deltalake append (one commit)")

        start()
        target = str(work / f"floor-delta-batched-{r}")
        for i in range(0, n, batch):
            write_deltalake(target, table.slice(i, batch), mode="append")
        record(f"floor: deltalake append ({batch}-row commits)")

        for scheme in ("sqlite", "parquet", "delta"):
            name = f"store-{scheme}-{r}"
            uri = f"{scheme}:///{work / (name + '.db' if scheme == 'sqlite' else name)}"
            with open_store(uri) as store:
                gc.collect()
                start()
                for b in pool:
                    store.write_spans(b)
                record(f"store: {scheme} write_spans ({batch}-span batches)")
        for child in work.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
    gc.unfreeze()
    return results


# -- search -----------------------------------------------------------------------------------
QUERIES = {
    "search: model = 'gpt-4o' AND total_tokens > 3000 (top 100)": (
        "model = 'gpt-4o' AND total_tokens > 3000",
        None,
    ),
    "search: status = 'ERROR' order by execution_time_ms DESC": (
        "status = 'ERROR'",
        ["execution_time_ms DESC"],
    ),
    "search: tags.env = 'prod' AND metadata.user = 'user-7'": (
        "tags.env = 'prod' AND metadata.user = 'user-7'",
        None,
    ),
    "search: newest 100, no filter": (None, None),
}


def search_bench(scheme: str, spans: int, batch: int, repeat: int, work: Path) -> dict[str, Any]:
    uri = f"{scheme}:///{work / ('search-' + scheme)}"
    out: dict[str, Any] = {}
    gc.collect()
    before = rss_mb()
    highest = before
    with open_store(uri) as store:
        t = time.perf_counter()
        for i, b in enumerate(batches(10_000_000, spans, batch)):
            store.write_spans(b)
            if i % 50 == 0:
                highest = max(highest, rss_mb())
        elapsed = time.perf_counter() - t
    out["ingest spans/s (incl. generating the spans)"] = spans / elapsed
    out["RSS growth during ingest, MB (sampled max - start)"] = highest - before

    def measure(label: str) -> None:
        with open_store(uri) as store:
            assert isinstance(store, LakeStore)
            t = time.perf_counter()
            store.search_traces(max_results=100)
            out[f"{label} cold open + first search (ms)"] = 1000 * (time.perf_counter() - t)
            for name, (flt, order) in QUERIES.items():
                page = store.search_traces(filter_string=flt, order_by=order, max_results=100)
                assert page.traces, name
                med, best = median_time(
                    lambda flt=flt, order=order: store.search_traces(
                        filter_string=flt, order_by=order, max_results=100
                    ),
                    repeat,
                )
                out[f"{label} {name} (ms, median/min)"] = (1000 * med, 1000 * best)
            ids = [t.trace_id for t in store.search_traces(max_results=50).traces]
            med, best = median_time(lambda: [store.get_trace(i) for i in ids[:10]], 3)
            out[f"{label} get_trace, all spans of one trace (ms, median/min)"] = (
                100 * med,
                100 * best,
            )
            spans_ds = store.backend.dataset("spans")
            assert spans_ds is not None
            out[f"{label} span files"] = len(spans_ds.files)

            dictionary_model = ds.ParquetFileFormat(
                read_options=ds.ParquetReadOptions(dictionary_columns=["model"])
            )

            def arrow_groupby() -> Any:
                d = store.backend.dataset("spans")
                assert d is not None
                d = ds.FileSystemDataset(
                    list(d.get_fragments()), d.schema, dictionary_model, d.filesystem
                )
                table = d.to_table(columns=["model", "total_tokens"])
                return table.group_by("model").aggregate([("total_tokens", "sum")])

            def duck_groupby() -> Any:
                dataset = store.backend.dataset("spans")  # noqa: F841 - read by DuckDB
                return duckdb.sql(
                    "SELECT model, sum(total_tokens) FROM dataset GROUP BY model"
                ).fetchall()

            for name, fn in (
                ("group-by tokens per model, pyarrow", arrow_groupby),
                ("group-by tokens per model, DuckDB over Arrow", duck_groupby),
            ):
                med, best = median_time(fn, repeat)
                out[f"{label} {name} (ms, median/min)"] = (1000 * med, 1000 * best)
            if scheme == "parquet":
                root = work / f"search-{scheme}" / "spans"
                med, best = median_time(
                    lambda: (
                        pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True)
                        .group_by("model")
                        .agg(pl.col("total_tokens").sum())
                        .collect()
                    ),
                    repeat,
                )
            else:
                med, best = median_time(
                    lambda: (
                        pl.scan_delta(str(work / f"search-{scheme}" / "spans"))
                        .group_by("model")
                        .agg(pl.col("total_tokens").sum())
                        .collect()
                    ),
                    repeat,
                )
            out[f"{label} group-by tokens per model, Polars (ms, median/min)"] = (
                1000 * med,
                1000 * best,
            )

    measure("[as written]")
    with open_store(uri) as store:
        t = time.perf_counter()
        compact(store)
        out["compact (s)"] = time.perf_counter() - t
    measure("[compacted]")
    if scheme == "delta":
        out["delta versions (spans table)"] = DeltaTable(
            str(work / f"search-{scheme}" / "spans")
        ).version()
    return out


ANALYTICS = {
    "per model, per hour (the goal: < 200 ms)": (None, ["model"]),
    "per hour, no groups": (None, []),
    "per model, per hour, filter tags.env = 'prod'": ("tags.env = 'prod'", ["model"]),
    "per user, per hour": (None, ["user"]),
    "per span type, per hour (span level)": (None, ["span_type"]),
}


def analytics_bench(
    scheme: str, spans: int, batch: int, repeat: int, work: Path
) -> dict[str, Any]:
    """``trace_metrics`` timings over ``spans`` spans written through the store."""
    name = f"analytics-{scheme}"
    uri = f"{scheme}:///{work / (name + '.db' if scheme == 'sqlite' else name)}"
    out: dict[str, Any] = {}
    with open_store(uri) as store:
        t = time.perf_counter()
        for b in batches(10_000_000, spans, batch):
            store.write_spans(b)
        out["ingest (s)"] = time.perf_counter() - t
    if scheme != "sqlite":
        with open_store(uri) as store:
            compact(store)
    with open_store(uri) as store:
        first_filter, first_groups = next(iter(ANALYTICS.values()))
        t = time.perf_counter()
        table = store.trace_metrics(build_query(None, first_filter, first_groups, "1h"))
        out["cold open + first per-model per-hour table (ms)"] = 1000 * (time.perf_counter() - t)
        out["rows in the per-model per-hour table"] = len(table)
        for label, (flt, groups) in ANALYTICS.items():
            query = build_query(None, flt, groups, "1h")
            assert len(store.trace_metrics(query)), label
            reps = repeat if "span level" not in label else max(3, repeat // 5)
            med, best = median_time(lambda query=query: store.trace_metrics(query), reps)
            out[f"{label} (ms, median/min)"] = (1000 * med, 1000 * best)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool-spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--search-spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--stores", default="parquet,delta", help="lake stores for search")
    parser.add_argument("--analytics-spans", type=int, default=1_000_000)
    parser.add_argument("--analytics-stores", default="sqlite,parquet,delta")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--all-cores", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-analytics", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pool_spans, args.rounds, args.search_spans, args.repeat = 10_000, 1, 20_000, 3
        args.analytics_spans = 20_000
    all_cores = os.sched_getaffinity(0)
    print(f"# bench_stores  cores={len(all_cores)}  load={os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="spanlake-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            # Write throughput is "per core": pin to one (threads inherit the mask).
            if not args.all_cores:
                os.sched_setaffinity(0, {min(all_cores)})
            results = throughput(args.pool_spans, args.batch, args.rounds, work)
            os.sched_setaffinity(0, all_cores)
            wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
            cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
            print(
                f"\n## write throughput: {args.pool_spans:,} spans, {args.rounds} rounds, "
                "median rows/s (wall clock | per CPU-second of this process)"
            )
            for k in wall:
                print(f"{k:60s} {wall[k]:>10,.0f} | {cpu[k]:>10,.0f}", flush=True)
            b = args.batch
            pairs = [
                (
                    "parquet store / pyarrow Parquet write",
                    f"store: parquet write_spans ({b}-span batches)",
                    "floor: pyarrow Parquet zstd write",
                ),
                (
                    "parquet store / Arrow build",
                    f"store: parquet write_spans ({b}-span batches)",
                    "floor: Arrow table from SpanRecords (our builder)",
                ),
                (
                    "delta store / deltalake batched appends",
                    f"store: delta write_spans ({b}-span batches)",
                    f"floor: deltalake append ({b}-row commits)",
                ),
                (
                    "delta store / Arrow build",
                    f"store: delta write_spans ({b}-span batches)",
                    "floor: Arrow table from SpanRecords (our builder)",
                ),
            ]
            print("\nratios (wall | CPU):")
            for label, num, den in pairs:
                print(f"{label:45s} {wall[num] / wall[den]:.3f} | {cpu[num] / cpu[den]:.3f}")
        if not args.skip_search:
            for scheme in args.stores.split(","):
                out = search_bench(scheme, args.search_spans, args.batch, args.repeat, work)
                print(f"\n## {scheme}: search over {args.search_spans:,} spans")
                for k, v in out.items():
                    text = f"{v[0]:.1f} / {v[1]:.1f}" if isinstance(v, tuple) else f"{v:,.1f}"
                    print(f"{k:75s} {text:>16s}", flush=True)
        if not args.skip_analytics:
            for scheme in args.analytics_stores.split(","):
                out = analytics_bench(scheme, args.analytics_spans, args.batch, args.repeat, work)
                print(f"\n## {scheme}: trace_metrics over {args.analytics_spans:,} spans")
                for k, v in out.items():
                    text = f"{v[0]:.1f} / {v[1]:.1f}" if isinstance(v, tuple) else f"{v:,.1f}"
                    print(f"{k:75s} {text:>16s}", flush=True)


if __name__ == "__main__":
    main()
