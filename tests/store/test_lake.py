"""Lake-store guarantees: atomic files, idempotent replays, concurrent writer processes,
bounded caches, compaction/vacuum, and other engines reading the files directly."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from spanlake.exporter.errors import ConfigError, TransientStoreError
from spanlake.exporter.records import TraceState
from spanlake.exporter.store import (
    _lake_spans,
    _lake_traces,
    delta,
    maintenance,
    open_store,
    parquet,
)
from spanlake.exporter.store._arrow import spans_to_table
from spanlake.exporter.store._lake import SPANS, LakeStore, batch_txn_id
from store.conftest import uri_for
from store.factories import make_trace, make_traces, trace_id_for, writer_process

LAKES = ["parquet", "delta"]


def _data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts]


def _expected_tokens(spans: list) -> dict[str, int]:  # type: ignore[type-arg]
    out: dict[str, int] = {}
    for s in spans:
        if s.model and s.token_usage:
            out[s.model] = out.get(s.model, 0) + s.token_usage.total_tokens
    return out


@pytest.mark.parametrize("backend", LAKES)
def test_four_writer_processes_lose_nothing(backend: str, tmp_path: Path) -> None:
    uri = uri_for(backend, tmp_path)
    workers, own, shared = 4, 6, 4
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=writer_process, args=(uri, w, workers, own, shared))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * workers

    expected: dict[str, int] = {}
    for w in range(workers):
        for n in range(1000 * (w + 1), 1000 * (w + 1) + own):
            expected[trace_id_for(n)] = len(make_trace(n))
    for n in range(shared):
        expected[trace_id_for(n)] = len(make_trace(n, llm_calls=3))
    with open_store(uri) as store:
        assert isinstance(store, LakeStore)
        traces = store.search_traces(max_results=1000).traces
        assert {t.trace_id: t.span_count for t in traces} == expected
        assert all(t.state is TraceState.OK for t in traces)
        # every span stored exactly once, content intact
        assert store.count_spans() == sum(expected.values())
        shared_trace = store.get_trace(trace_id_for(1))
        assert [s.span_id for s in shared_trace.spans] == [
            s.span_id for s in make_trace(1, llm_calls=3)
        ]
        assert shared_trace.info.token_usage.total_tokens == 3 * 1250


@pytest.mark.parametrize("backend", LAKES)
def test_one_file_per_batch_not_per_span(backend: str, tmp_path: Path) -> None:
    with open_store(uri_for(backend, tmp_path)) as store:
        store.write_spans(make_traces(0, 50))  # 200 spans, one partition
        assert len(_data_files(tmp_path / "lake" / "spans")) == 1
        assert len(_data_files(tmp_path / "lake" / "traces")) == 1


def test_parquet_failed_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = uri_for("parquet", tmp_path)
    with open_store(uri) as store:
        store.write_spans(make_trace(1))
        before = sorted(_data_files(tmp_path))
        real = pq.write_table

        def half_then_fail(table, where, **kwargs):  # type: ignore[no-untyped-def]
            real(table.slice(0, 1), where, **kwargs)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(parquet.pq, "write_table", half_then_fail)
        with pytest.raises(TransientStoreError):
            store.write_spans(make_trace(2))
        monkeypatch.undo()
        assert sorted(_data_files(tmp_path)) == before
        assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
        # the retried batch then goes through
        assert store.write_spans(make_trace(2)) == 4
        assert store.get_trace(trace_id_for(2)).info.span_count == 4


def test_parquet_readers_ignore_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with open_store(uri_for("parquet", tmp_path)) as store:
        store.write_spans(make_trace(1))
    part = (
        next(_data_files(root / "spans")).parent if False else _data_files(root / "spans")[0].parent
    )
    (part / ".part-half.parquet.1234.tmp").write_bytes(b"PAR1 half a file")
    assert ds.dataset(root / "spans", format="parquet", partitioning="hive").count_rows() == 4
    assert (
        pl.scan_parquet(f"{root}/spans/**/*.parquet", hive_partitioning=True).collect().height == 4
    )
    with open_store(uri_for("parquet", tmp_path)) as store:
        assert store.get_trace(trace_id_for(1)).info.span_count == 4


@pytest.mark.parametrize("backend", LAKES)
def test_replay_from_a_fresh_process_is_idempotent(backend: str, tmp_path: Path) -> None:
    uri = uri_for(backend, tmp_path)
    spans = make_traces(0, 5)
    with open_store(uri) as store:
        assert store.write_spans(spans) == 20
    with open_store(uri) as store:  # knows nothing in memory
        assert store.write_spans(spans) == 0
        assert store.write_spans(spans[::-1]) == 0
        assert isinstance(store, LakeStore)
        assert store.count_spans() == 20


@pytest.mark.parametrize("backend", LAKES)
def test_a_span_repeated_in_a_batch_keeps_its_first_copy_and_place(
    backend: str, tmp_path: Path
) -> None:
    spans = make_traces(0, 2)
    again = dataclasses.replace(spans[1], name="second copy")
    batch = [spans[0], spans[1], *spans[2:5], again, *spans[5:]]
    with open_store(uri_for(backend, tmp_path)) as store:
        assert isinstance(store, LakeStore)
        assert store.write_spans(batch) == len(spans)
        stored = store.backend.dataset(SPANS)
        assert stored is not None
        rows = stored.to_table(columns=["span_id", "name"]).to_pylist()
    assert [r["span_id"] for r in rows] == [s.span_id for s in spans]
    assert [r["name"] for r in rows] == [s.name for s in spans]


@pytest.mark.parametrize("backend", LAKES)
def test_backend_append_with_same_transaction_id_is_skipped(backend: str, tmp_path: Path) -> None:
    spans = make_traces(0, 3)
    with open_store(uri_for(backend, tmp_path)) as store:
        assert isinstance(store, LakeStore)
        store.write_spans(spans)
        store.backend.append(SPANS, spans_to_table(spans), txn_id=batch_txn_id(spans))
        assert store.count_spans() == 12
    if backend == "delta":
        table = DeltaTable(str(tmp_path / "lake" / "spans"))
        assert table.transaction_version(batch_txn_id(spans)) == 1


@pytest.mark.parametrize("backend", LAKES)
def test_append_reports_exactly_the_files_it_added(backend: str, tmp_path: Path) -> None:
    """The store indexes its own files from what append returns instead of reading them
    back: the paths must be the table's own file names, for odd experiment names too."""
    with open_store(uri_for(backend, tmp_path)) as store:
        assert isinstance(store, LakeStore)
        store.write_spans(make_traces(0, 2))
        before = set(store.backend.files(SPANS))
        spans = make_traces(10, 2, experiment="a b/é%") + make_traces(20, 1)
        added = store.backend.append(SPANS, spans_to_table(spans), txn_id=batch_txn_id(spans))
        after = set(store.backend.files(SPANS))
        assert added is not None and len(added) == 2  # one file per partition
        assert set(added) == after - before
        fresh = open_store(uri_for(backend, tmp_path))
        assert isinstance(fresh, LakeStore)
        assert set(fresh.backend.files(SPANS)) == after
        fresh.close()


def test_delta_commit_conflicts_are_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = delta.write_deltalake
    failures = {"left": 3}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            raise CommitFailedError("Transaction failed: version already exists (conflict)")
        return real(*args, **kwargs)

    monkeypatch.setattr(delta, "write_deltalake", flaky)
    with open_store(uri_for("delta", tmp_path)) as store:
        assert store.write_spans(make_trace(1)) == 4
        assert failures["left"] == 0
        monkeypatch.setattr(delta, "COMMIT_ATTEMPTS", 2)
        failures["left"] = 10
        with pytest.raises(TransientStoreError):
            store.write_spans(make_trace(2))
        monkeypatch.setattr(delta, "write_deltalake", real)
        assert [t.trace_id for t in store.search_traces().traces] == [trace_id_for(1)]
        assert store.write_spans(make_trace(2)) == 4


@pytest.mark.parametrize("backend", LAKES)
def test_evicted_trace_is_reread_from_files(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lake_spans, "CACHE_MAX_SPANS", 8)
    monkeypatch.setattr(_lake_spans, "RECENT_FILE_SECONDS", 0.0)
    spans = make_trace(1, llm_calls=3)
    with open_store(uri_for(backend, tmp_path)) as store:
        store.write_spans(spans[:3])
        for n in range(2, 6):
            store.write_spans(make_trace(n))  # pushes trace 1 out of the cache
        assert isinstance(store, LakeStore)
        assert trace_id_for(1) not in store._spans
        assert store.write_spans(spans) == 2
        info = store.get_trace(trace_id_for(1)).info
        assert info.span_count == 5 and info.state is TraceState.OK


@pytest.mark.parametrize("backend", LAKES)
def test_compaction_keeps_results_and_drops_duplicates(backend: str, tmp_path: Path) -> None:
    uri = uri_for(backend, tmp_path)
    with open_store(uri) as store:
        assert isinstance(store, LakeStore)
        for n in range(6):
            store.write_spans(make_trace(n))
        store.set_trace_tag(trace_id_for(2), "k", "v")
        # a span stored twice (as a race between two processes could): compaction drops it
        store.backend.append(SPANS, spans_to_table(make_trace(3)[:1]))
        before = [t.to_dict() for t in store.search_traces().traces]
        files_before = len(_data_files(tmp_path / "lake" / "spans"))
        stats = maintenance.compact(store)
        assert stats["files_after"] < stats["files_before"]
        assert [t.to_dict() for t in store.search_traces().traces] == before
        assert store.count_spans() == 24
        if backend == "parquet":
            assert len(_data_files(tmp_path / "lake" / "spans")) == 1 < files_before
    with open_store(uri) as fresh:
        assert [t.to_dict() for t in fresh.search_traces().traces] == before


def test_vacuum_retention_safeguard(tmp_path: Path) -> None:
    with open_store(uri_for("parquet", tmp_path)) as store:
        for n in range(3):
            store.write_spans(make_trace(n))
        maintenance.compact(store)
        trash = list((tmp_path / "lake" / "_trash").rglob("*.parquet"))
        assert trash
        with pytest.raises(ConfigError, match="refusing"):
            maintenance.vacuum(store, 1)
        assert maintenance.vacuum(store) == []  # too recent for the default retention
        assert len(maintenance.vacuum(store, 0, dry_run=True, force=True)) == len(trash)
        assert all(p.exists() for p in trash)
        maintenance.vacuum(store, 0, force=True)
        assert not any(p.exists() for p in trash)
        assert store.search_traces().traces[0].span_count == 4


def test_delta_vacuum_runs_after_compaction(tmp_path: Path) -> None:
    with open_store(uri_for("delta", tmp_path)) as store:
        for n in range(3):
            store.write_spans(make_trace(n))
        maintenance.compact(store)
        removed = maintenance.vacuum(store, 0, force=True)
        assert any(p.startswith("spans/") for p in removed)
        assert len(store.search_traces().traces) == 3


def test_delta_compaction_checkpoints_every_table(tmp_path: Path) -> None:
    """Readers start from a checkpoint at the latest version, not a replay of the log."""
    with open_store(uri_for("delta", tmp_path)) as store:
        for n in range(3):
            store.write_spans(make_trace(n))
        store.set_trace_tag(trace_id_for(1), "k", "v")
        maintenance.compact(store)
    for table in ("spans", "traces", "tag_overrides", "experiments"):
        log = tmp_path / "lake" / table / "_delta_log"
        version = DeltaTable(str(tmp_path / "lake" / table)).version()
        assert (log / f"{version:020d}.checkpoint.parquet").exists(), table
    assert pl.read_delta(str(tmp_path / "lake" / "spans")).height == 12  # make_trace: 4 spans


def test_other_engines_read_the_parquet_store(tmp_path: Path) -> None:
    spans = make_traces(0, 9) + make_trace(9, experiment="my exp/1")
    with open_store(uri_for("parquet", tmp_path)) as store:
        store.write_spans(spans)
    root = tmp_path / "lake"
    expected = _expected_tokens(spans)
    # pyarrow
    dataset = ds.dataset(root / "spans", format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["model", "total_tokens", "experiment"])
    got = table.group_by("model").aggregate([("total_tokens", "sum")]).to_pylist()
    assert {r["model"]: r["total_tokens_sum"] for r in got if r["model"]} == expected
    # partition values are URI-encoded in directory names and decoded by every reader
    assert set(table.column("experiment").to_pylist()) == {"exp", "my exp/1"}
    hive = pl.scan_parquet(f"{root}/spans/**/*.parquet", hive_partitioning=True)
    assert set(hive.select("experiment").collect().to_series().to_list()) == {"exp", "my exp/1"}
    # Polars
    frame = (
        pl.scan_parquet(f"{root}/spans/**/*.parquet", hive_partitioning=True)
        .group_by("model")
        .agg(pl.col("total_tokens").sum())
        .collect()
    )
    assert {m: t for m, t in frame.iter_rows() if m} == expected
    # DuckDB through Arrow (the replacement scan finds the local variable ``dataset``)
    rows = duckdb.sql(
        "SELECT model, sum(total_tokens) FROM dataset WHERE model IS NOT NULL GROUP BY model"
    ).fetchall()
    assert dict(rows) == expected
    traces = ds.dataset(root / "traces", format="parquet", partitioning="hive").to_table()
    assert traces.num_rows == 10


def test_other_engines_read_the_delta_store(tmp_path: Path) -> None:
    spans = make_traces(0, 10)
    with open_store(uri_for("delta", tmp_path)) as store:
        store.write_spans(spans)
    root = tmp_path / "lake"
    expected = _expected_tokens(spans)
    dataset = DeltaTable(str(root / "spans")).to_pyarrow_dataset()
    rows = duckdb.from_arrow(dataset).aggregate("model, sum(total_tokens)", "model").fetchall()
    assert {m: t for m, t in rows if m} == expected
    rows = duckdb.sql(
        "SELECT model, sum(total_tokens) FROM dataset WHERE model IS NOT NULL GROUP BY model"
    ).fetchall()
    assert dict(rows) == expected
    frame = pl.read_delta(str(root / "spans")).group_by("model").agg(pl.col("total_tokens").sum())
    assert {m: t for m, t in frame.iter_rows() if m} == expected
    assert pl.read_delta(str(root / "traces")).height == 10


def test_delta_log_keeps_statistics_for_filter_columns_only(tmp_path: Path) -> None:
    """Engines skip Delta files by the log's min/max: kept for ids, times, model and
    tokens (a trace-id lookup skips files), not for the ~2 KB JSON columns."""
    spans = make_traces(0, 10) + make_traces(5000, 10)
    with open_store(uri_for("delta", tmp_path)) as store:
        store.write_spans(spans[:40])
        store.write_spans(spans[40:])
    table = DeltaTable(str(tmp_path / "lake" / "spans"))
    stats = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    assert "min.trace_id" in stats and "max.start_time_ns" in stats and "min.model" in stats
    assert not [k for k in stats if k.endswith((".attributes", ".events", ".inputs"))]
    assert stats["num_records"] == [40, 40]
    target = trace_id_for(5003)
    ranges = zip(stats["min.trace_id"], stats["max.trace_id"], strict=True)
    assert [lo <= target <= hi for lo, hi in ranges].count(True) == 1  # one file to read


def test_bad_lake_uris_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_store(f"parquet:///{tmp_path}/missing/dir/lake")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        open_store(f"parquet:///{tmp_path}/file")
    with pytest.raises(ConfigError):
        open_store("delta+ftp://bucket/prefix")


def test_object_store_options_come_from_env() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "HOME": "/x"}
    assert delta.storage_options_from_env(env) == {
        "aws_region": "eu-west-1",
        "aws_endpoint_url": "http://127.0.0.1:9000",
    }
    assert os.environ is not env


WINNING_TRACE_ROWS = """
SELECT * EXCLUDE (rn) FROM (
  SELECT *, row_number() OVER (
    PARTITION BY trace_id
    ORDER BY span_count + tag_override_count DESC, computed_time_ns DESC) AS rn
  FROM traces)
WHERE rn = 1
"""


@pytest.mark.parametrize("backend", LAKES)
def test_documented_trace_view_matches_the_store(backend: str, tmp_path: Path) -> None:
    """Before compaction a trace may have several rows; the README's query picks the
    store's answer."""
    spans = make_traces(0, 6)
    with open_store(uri_for(backend, tmp_path)) as store:
        store.write_spans(spans[::2])  # every trace first without half its spans
        store.write_spans(spans[1::2])
        store.set_trace_tag(trace_id_for(1), "label", "good")
        expected = {
            t.trace_id: (t.state.value, t.span_count, t.tags.get("label"))
            for t in store.search_traces().traces
        }
    root = tmp_path / "lake" / "traces"
    traces = (  # read by name through DuckDB's replacement scan
        ds.dataset(root, format="parquet", partitioning="hive")
        if backend == "parquet"
        else DeltaTable(str(root)).to_pyarrow_dataset()
    )
    assert traces.count_rows() > 6  # superseded rows are still there
    rows = duckdb.sql(f"SELECT trace_id, state, span_count, tags FROM ({WINNING_TRACE_ROWS})")
    got = {r[0]: (r[1], r[2], dict(r[3]).get("label")) for r in rows.fetchall()}
    assert got == expected


@pytest.mark.parametrize("backend", LAKES)
def test_small_trace_row_files_are_merged_while_writing(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lake_traces, "MERGE_CHECK_EVERY", 2)
    monkeypatch.setattr(_lake_traces, "MERGE_MIN_FILES", 4)
    uri = uri_for(backend, tmp_path)
    with open_store(uri) as store:
        assert isinstance(store, LakeStore)
        for n in range(12):
            spans = make_trace(n)
            store.write_spans(spans[1:])  # root last: two trace-row files per trace
            store.write_spans(spans[:1])
        assert len(store.backend.files("traces")) < 12
        traces = store.search_traces(max_results=100).traces
    assert len(traces) == 12 and all(t.span_count == 4 for t in traces)
    with open_store(uri) as fresh:
        assert [t.to_dict() for t in fresh.search_traces(max_results=100).traces] == [
            t.to_dict() for t in traces
        ]


def test_delta_handles_reopened_and_interleaved_writers_stay_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores on one Delta lake, handles reopened every 2 versions, trace-row merges
    every 2 writes: each sees the other's spans and trace rows, nothing is counted twice."""
    monkeypatch.setattr(delta, "REOPEN_EVERY_VERSIONS", 2)
    monkeypatch.setattr(_lake_traces, "MERGE_CHECK_EVERY", 2)
    monkeypatch.setattr(_lake_traces, "MERGE_MIN_FILES", 3)
    uri = uri_for("delta", tmp_path)
    with open_store(uri) as one, open_store(uri) as two:
        for n in range(8):
            spans = make_trace(n)
            one.write_spans(spans[2:])  # the two writers share every trace
            two.write_spans(spans[:2])
        for store in (one, two):
            traces = store.search_traces(max_results=100).traces
            assert sorted(t.trace_id for t in traces) == [trace_id_for(n) for n in range(8)]
            assert all(t.span_count == 4 and t.state == TraceState.OK for t in traces)
            assert isinstance(store, LakeStore) and store.count_spans() == 32
