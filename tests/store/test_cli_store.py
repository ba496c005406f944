"""``spanlake store compact|vacuum|copy`` end to end through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.exporter.cli import main
from spanlake.exporter.records import Assessment
from spanlake.exporter.store import Store, open_store
from store.conftest import uri_for
from store.factories import make_trace, make_traces, trace_id_for


def _snapshot(store: Store) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    infos = [t.to_dict() for t in store.search_traces(max_results=1000).traces]
    details = []
    for info in infos:
        trace = store.get_trace(str(info["trace_id"]))
        details.append(
            {
                "spans": [(s.span_id, s.name, s.attributes, s.inputs) for s in trace.spans],
                "assessments": [a.to_dict() for a in trace.assessments],
            }
        )
    return infos, details


def test_copy_sqlite_to_delta_to_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = uri_for("sqlite", tmp_path, "src")
    with open_store(source) as s:
        s.get_or_create_experiment("empty")
        s.write_spans(make_traces(0, 30))
        s.write_spans(make_trace(99, experiment="other", tags={"env": "prod"}))
        s.set_trace_tag(trace_id_for(3), "reviewed", "yes")
        s.delete_trace_tag(trace_id_for(99), "env")
        s.log_assessment(Assessment(trace_id_for(3), "correct", True, rationale="fine"))
        expected = _snapshot(s)
        experiments = [e.name for e in s.list_experiments()]

    delta_uri = uri_for("delta", tmp_path, "lake")
    assert main(["store", "copy", "--from", source, "--to", delta_uri, "--batch-size", "25"]) == 0
    out, err = capsys.readouterr()
    assert "copy" in err and "124 spans" in err  # progress on stderr, count when no total
    assert "copied 124 new spans" in out

    parquet_uri = uri_for("parquet", tmp_path, "pq")
    assert main(["store", "copy", "--from", delta_uri, "--to", parquet_uri]) == 0
    out, err = capsys.readouterr()
    assert "100.0% 124/124 spans" in err

    for uri in (delta_uri, parquet_uri):
        with open_store(uri) as copy:
            assert _snapshot(copy) == expected
            assert sorted(e.name for e in copy.list_experiments()) == sorted(experiments)

    # copying again adds nothing
    assert main(["store", "copy", "--from", source, "--to", parquet_uri, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "copied 0 new spans" in out and err == ""


def test_compact_and_vacuum_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = uri_for("parquet", tmp_path)
    with open_store(uri) as s:
        for n in range(4):
            s.write_spans(make_trace(n))
    assert main(["store", "compact", "--store", uri]) == 0
    out, _ = capsys.readouterr()
    assert "files ->" in out

    assert main(["store", "vacuum", "--store", uri, "--retention-hours", "0"]) == 2
    _, err = capsys.readouterr()
    assert "refusing" in err
    assert (
        main(["store", "vacuum", "--store", uri, "--retention-hours", "0", "--force", "--dry-run"])
        == 0
    )
    out, err = capsys.readouterr()
    assert "would delete" in err and "_trash" in out
    assert main(["store", "vacuum", "--store", uri, "--retention-hours", "0", "--force"]) == 0
    assert not list((tmp_path / "lake" / "_trash").rglob("*.parquet"))
    with open_store(uri) as s:
        assert len(s.search_traces().traces) == 4


def test_lake_commands_refuse_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "compact", "--store", uri_for("sqlite", tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert "parquet:// and delta://" in err
