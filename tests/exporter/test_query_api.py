"""The public query API (`spanlake.query`): objects, Arrow, pandas, feedback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from spine_factories import make_trace

import spanlake.query as q
from spanlake.exporter.store import open_store


@pytest.fixture
def uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/q.db"
    store = open_store(uri)
    store.write_spans(make_trace(1, tags={"env": "prod"}, metadata={"user": "alice"}))
    store.write_spans(make_trace(2, status="ERROR", model="gpt-4o"))
    store.close()
    return uri


def test_public_surface() -> None:
    assert set(q.__all__) >= {
        "search_traces",
        "get_trace",
        "log_feedback",
        "log_expectation",
        "list_experiments",
        "set_trace_tag",
        "delete_trace_tag",
    }
    for name in q.__all__:
        assert hasattr(q, name), name


def test_search_get_arrow_pandas(uri: str) -> None:
    traces = q.search_traces(experiment_names=["exp"], store=uri)
    assert [t.name for t in traces] == ["agent", "agent"]
    assert traces.next_page_token is None
    table = traces.to_arrow()
    assert table.num_rows == 2
    assert table.schema.field("request_time").type == pa.timestamp("ms", tz="UTC")
    assert table.column("state").to_pylist() == ["ERROR", "OK"]
    assert table.column("tags").to_pylist()[1] == [("env", "prod")]
    frame = traces.to_pandas()
    assert list(frame["total_tokens"]) == [110, 110]
    errors = q.search_traces(filter_string="status = 'ERROR'", store=uri)
    assert len(errors) == 1 and errors[0].models == ["gpt-4o"]
    trace = q.get_trace(errors[0].trace_id, store=uri)
    assert len(trace.spans) == 2 and trace.to_dict()["info"]["state"] == "ERROR"


def test_feedback_and_expectations(uri: str) -> None:
    trace_id = f"{1:032x}"
    fb = q.log_feedback(
        trace_id,
        "helpful",
        5,
        rationale="great",
        source_type="llm_judge",
        source_id="judge-1",
        store=uri,
    )
    assert fb.assessment_id and fb.time_ms > 0
    q.log_expectation(trace_id, "answer", {"city": "Paris"}, store=uri)
    assert [
        t.trace_id for t in q.search_traces(filter_string="feedback.helpful >= 4", store=uri)
    ] == [trace_id]
    assessments = q.get_trace(trace_id, store=uri).assessments
    assert {a.name: a.value for a in assessments} == {"helpful": 5, "answer": {"city": "Paris"}}
    assert assessments[0].source_type.value == "LLM_JUDGE"
    with pytest.raises(q.SpanlakeError, match="source_type"):
        q.log_feedback(trace_id, "x", 1, source_type="robot", store=uri)
    with pytest.raises(q.NotFoundError):
        q.log_feedback("f" * 32, "x", 1, store=uri)


def test_default_store_from_env(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLAKE_STORE", uri)
    assert len(q.search_traces()) == 2
    q.set_trace_tag(f"{2:032x}", "triaged", "yes")
    assert q.get_trace(f"{2:032x}").info.tags == {"triaged": "yes"}
    assert [e.name for e in q.list_experiments()] == ["exp"]
    with pytest.raises(q.FilterError):
        q.search_traces(filter_string="nonsense here")
