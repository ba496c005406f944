"""SQLite store specifics: search grammar end to end, pagination, WAL, many processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from spine_factories import make_trace, write_traces

from spanlake.exporter.errors import ConfigError, FilterError, NotFoundError
from spanlake.exporter.records import Assessment, AssessmentKind
from spanlake.exporter.store import open_store, parse_store_uri
from spanlake.exporter.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = open_store(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(s, SQLiteStore)
    s.write_spans(make_trace(1, tags={"env": "prod"}, metadata={"user": "alice"}, tokens=50))
    s.write_spans(make_trace(2, status="ERROR", tags={"env": "dev"}, duration_ms=3000))
    s.write_spans(
        make_trace(3, model="gpt-4o", tokens=500, name="Retriever Agent", metadata={"user": "bob"})
    )
    s.write_spans(make_trace(4, experiment="other", tags={"env": "prod"}))
    yield s
    s.close()


def ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(t.trace_id, 16) for t in page.traces]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        (None, [4, 3, 2, 1]),
        ("status = 'ERROR'", [2]),
        ("trace.status != 'ERROR'", [4, 3, 1]),
        ("attributes.status = 'OK' AND tags.env = 'prod'", [4, 1]),
        ("tags.env = 'prod' OR metadata.user = 'bob'", [4, 3, 1]),
        ("(tags.env = 'dev' OR tags.env = 'prod') AND total_tokens < 100", [1]),
        ("tags.missing = 'x'", []),
        ("tags.env != 'prod'", [2]),  # traces without the tag never match
        ("metadata.user IN ('alice', 'bob')", [3, 1]),
        ("metadata.user NOT IN ('alice')", [3]),
        ("execution_time_ms > 1000", [2]),
        ("execution_time_ms >= 100 AND execution_time_ms <= 100", [4, 3, 1]),
        ("timestamp_ms > 1700000002500", [4, 3]),
        ("model = 'gpt-4o'", [3]),
        ("model LIKE 'claude%'", [4, 2, 1]),
        ("model != 'gpt-4o'", [4, 2, 1]),
        ("provider = 'openai'", [3]),
        ("name LIKE '%Agent'", [3]),
        ("name LIKE '%agent'", [4, 2, 1]),  # LIKE is case-sensitive
        ("name ILIKE '%agent'", [4, 3, 2, 1]),
        ("name NOT ILIKE 'retriever%'", [4, 2, 1]),
        ("span.name = 'chat gpt-4o'", [3]),
        ("span.type = 'CHAT_MODEL' AND span.model = 'gpt-4o'", [3]),
        ("span.attributes.`gen_ai.response.id` = 'msg_2'", [2]),
        ("span.attributes.`gen_ai.request.temperature` > 0.1", [4, 3, 2, 1]),
        ("cost_usd > 0.0012", [3]),
        ("experiment = 'other'", [4]),
        ("span_count = 2", [4, 3, 2, 1]),
    ],
)
def test_filter_grammar(store: SQLiteStore, filter_string: str | None, expected: list[int]) -> None:
    assert ids(store.search_traces(filter_string=filter_string)) == expected


@pytest.mark.parametrize(
    ("bad", "token"),
    [
        ("status = ", ""),
        ("status == 'OK'", "="),
        ("foo = 'x'", "foo"),
        ("status = 'OK' AND", ""),
        ("(status = 'OK'", ""),
        ("execution_time_ms > 'slow'", "'slow'"),
        ("status = 'OK' name = 'x'", "name"),
        ("status ~ 'OK'", "~"),
        ("total_tokens LIKE '1%'", ""),
    ],
)
def test_malformed_filter_names_the_bad_token(store: SQLiteStore, bad: str, token: str) -> None:
    with pytest.raises(FilterError) as err:
        store.search_traces(filter_string=bad)
    assert "Invalid filter" in str(err.value)
    if token:
        assert err.value.token == token
        assert token in str(err.value)


def test_experiments_order_and_pagination(store: SQLiteStore) -> None:
    assert ids(store.search_traces(experiment_names=["exp"])) == [3, 2, 1]
    assert ids(store.search_traces(experiment_names=["nope"])) == []
    assert ids(store.search_traces(order_by=["execution_time_ms DESC", "request_time_ms ASC"])) == [
        2,
        1,
        3,
        4,
    ]
    assert ids(store.search_traces(order_by=["total_tokens"])) == [1, 2, 4, 3]
    seen: list[int] = []
    token = None
    while True:
        page = store.search_traces(max_results=3, page_token=token)
        seen += ids(page)
        token = page.next_page_token
        if token is None:
            break
    assert seen == [4, 3, 2, 1]
    with pytest.raises(FilterError):
        store.search_traces(order_by=["tags.env"])
    with pytest.raises(FilterError):
        store.search_traces(page_token="garbage!")


def test_assessments_are_stored_and_searchable(store: SQLiteStore) -> None:
    t1, t3 = f"{1:032x}", f"{3:032x}"
    store.log_assessment(Assessment(trace_id=t1, name="correct", value=True, rationale="ok"))
    store.log_assessment(Assessment(trace_id=t3, name="correct", value=False))
    store.log_assessment(Assessment(trace_id=t3, name="score", value=0.4))
    store.log_assessment(
        Assessment(trace_id=t3, name="answer", value="Paris", kind=AssessmentKind.EXPECTATION)
    )
    assert ids(store.search_traces(filter_string="feedback.correct = true")) == [1]
    assert ids(store.search_traces(filter_string="feedback.correct = false")) == [3]
    assert ids(store.search_traces(filter_string="feedback.score < 0.5")) == [3]
    assert ids(store.search_traces(filter_string="expectation.answer = 'Paris'")) == [3]
    assert ids(store.search_traces(filter_string="feedback.answer = 'Paris'")) == []
    trace = store.get_trace(t3)
    assert {(a.name, a.value) for a in trace.assessments} == {
        ("correct", False),
        ("score", 0.4),
        ("answer", "Paris"),
    }
    with pytest.raises(NotFoundError):
        store.log_assessment(Assessment(trace_id="f" * 32, name="x", value=1))


def test_mutable_tags_override_span_tags(store: SQLiteStore) -> None:
    t1 = f"{1:032x}"
    store.set_trace_tag(t1, "env", "staging")
    store.set_trace_tag(t1, "reviewed", "yes")
    assert store.get_trace(t1).info.tags == {"env": "staging", "reviewed": "yes"}
    store.delete_trace_tag(t1, "env")
    assert store.get_trace(t1).info.tags == {"reviewed": "yes"}
    # A late span carrying the tag again does not resurrect a deleted tag.
    late = make_trace(1, tags={"env": "prod"})[1]
    late.span_id = "00000001000000ff"
    store.write_spans([late])
    assert store.get_trace(t1).info.tags == {"reviewed": "yes"}
    with pytest.raises(NotFoundError):
        store.set_trace_tag("e" * 32, "k", "v")


def test_replay_is_idempotent_and_get_trace_round_trips(store: SQLiteStore) -> None:
    spans = make_trace(1, tags={"env": "prod"}, metadata={"user": "alice"}, tokens=50)
    assert store.write_spans(spans) == 0
    trace = store.get_trace(f"{1:032x}".upper())
    assert trace.info.span_count == 2
    assert [s.span_id for s in trace.spans] == [s.span_id for s in spans]
    assert trace.spans[1].attributes == spans[1].attributes
    assert trace.spans[1].token_usage == spans[1].token_usage
    with pytest.raises(NotFoundError):
        store.get_trace("0" * 32)


def test_wal_mode_and_uri_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///rel.db")
    s.write_spans(make_trace(1))
    s.close()
    assert (tmp_path / "rel.db").exists()
    mode = sqlite3.connect(tmp_path / "rel.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert parse_store_uri(f"sqlite:///{tmp_path}/abs.db").path == f"{tmp_path}/abs.db"
    assert parse_store_uri("sqlite:////abs/x.db").path == "/abs/x.db"
    for bad in ("spanlake.db", "sqlite://relative.db", "mysql:///x", "sqlite:///"):
        with pytest.raises(ConfigError):
            open_store(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing-dir/x.db")


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write_traces, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = open_store(f"sqlite:///{path}")
    page = store.search_traces(max_results=1000)
    assert len(page.traces) == 160
    assert all(t.span_count == 2 and t.token_usage.total_tokens == 110 for t in page.traces)
    assert sorted(e.name for e in store.list_experiments()) == ["exp-0", "exp-1"]
    store.close()
