"""Lake stores at paths and with experiment names that need escaping (a space, a percent
sign, non-ASCII): what is written reads back, in this store and in a fresh one."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.exporter.store import open_store
from store.factories import make_traces


@pytest.mark.parametrize("backend", ["parquet", "delta"])
def test_root_and_experiment_names_that_need_escaping(backend: str, tmp_path: Path) -> None:
    root = tmp_path / "my lake 100% é"
    uri = f"{backend}:///{root}"
    spans = make_traces(0, 3, experiment="team a/b 50%") + make_traces(10, 2, experiment="plain")
    with open_store(uri) as store:
        assert store.write_spans(spans) == len(spans)
        first = store.search_traces(experiment_names=["team a/b 50%"]).traces
        assert len(first) == 3
        one = first[0].trace_id
        assert {s.span_id for s in store.get_trace(one).spans} == {
            s.span_id for s in spans if s.trace_id == one
        }
    with open_store(uri) as fresh:
        assert len(fresh.search_traces(max_results=100).traces) == 5
        assert len(fresh.get_trace(one).spans) == sum(s.trace_id == one for s in spans)
        assert fresh.write_spans(spans) == 0
