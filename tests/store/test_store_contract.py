"""THE store contract suite: every test runs on sqlite, parquet and delta (``store`` fixture),
and the cross-store tests check the three give identical answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.exporter.errors import FilterError, NotFoundError
from spanlake.exporter.records import (
    Assessment,
    AssessmentKind,
    AssessmentSource,
    SpanRecord,
    TraceState,
)
from spanlake.exporter.store import Store, open_store
from store.conftest import BACKENDS, uri_for
from store.factories import make_trace, make_traces, trace_id_for


def _span_dict(s: SpanRecord) -> dict[str, object]:
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "experiment": s.experiment,
        "name": s.name,
        "span_type": s.span_type,
        "kind": s.kind,
        "start_time_ns": s.start_time_ns,
        "end_time_ns": s.end_time_ns,
        "status": s.status,
        "status_message": s.status_message,
        "inputs": s.inputs,
        "outputs": s.outputs,
        "model": s.model,
        "provider": s.provider,
        "token_usage": s.token_usage.to_dict() if s.token_usage else None,
        "attributes": s.attributes,
        "events": [e.to_dict() for e in s.events],
        "resource": s.resource,
        "scope": s.scope,
        "trace_tags": s.trace_tags,
        "trace_metadata": s.trace_metadata,
        "client_request_id": s.client_request_id,
    }


def _jsonish(value: object) -> object:
    """Tuples become lists through JSON, on every store."""
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    return value


# -- writes ---------------------------------------------------------------------------------
def test_spans_round_trip_with_every_field(store: Store) -> None:
    spans = make_trace(1, nested_llm=True, tags={"env": "prod"}, metadata={"user": "ann"})
    assert store.write_spans(spans) == len(spans)
    trace = store.get_trace(trace_id_for(1))
    expected = sorted(spans, key=lambda s: (s.start_time_ns, s.span_id))
    assert [_span_dict(s) for s in trace.spans] == [_jsonish(_span_dict(s)) for s in expected]
    # "no usage" stays distinct from zero usage
    assert [s.token_usage is None for s in trace.spans] == [s.token_usage is None for s in expected]


def test_replayed_batch_is_not_stored_twice(store: Store) -> None:
    spans = make_traces(0, 3)
    assert store.write_spans(spans) == 12
    assert store.write_spans(spans) == 0
    assert store.write_spans(list(reversed(spans[:5])) + make_trace(3)) == 4
    assert store.write_spans(spans[:1] + spans[:1]) == 0
    assert sum(len(b) for b in store.iter_spans()) == 16
    page = store.search_traces(max_results=10)
    assert sorted(t.span_count for t in page.traces) == [4, 4, 4, 4]


def test_duplicate_spans_inside_one_batch_count_once(store: Store) -> None:
    spans = make_trace(5)
    assert store.write_spans(spans + spans) == len(spans)
    assert store.get_trace(trace_id_for(5)).info.span_count == len(spans)


def test_trace_is_in_progress_until_its_root_arrives(store: Store) -> None:
    root, *children = make_trace(7, tags={"env": "dev"})
    store.write_spans(children)
    info = store.get_trace(trace_id_for(7)).info
    assert info.state is TraceState.IN_PROGRESS
    assert info.name is None and info.request_preview is None
    assert info.span_count == len(children)
    store.write_spans([root])
    info = store.get_trace(trace_id_for(7)).info
    assert info.state is TraceState.OK
    assert info.name == "support_agent"
    assert info.tags == {"env": "dev"}
    assert info.request_preview is not None and info.request_preview.startswith("Question 7")
    assert info.execution_time_ms is not None


def test_trace_record_does_not_depend_on_arrival_order(backend: str, tmp_path: Path) -> None:
    spans = make_trace(9, llm_calls=3, nested_llm=True, tags={"a": "1"}, metadata={"m": "x"})
    orders = [
        [spans],
        [list(reversed(spans))],
        [spans[2:], spans[:2]],
        [[s] for s in reversed(spans)],
    ]
    records = []
    for n, batches in enumerate(orders):
        with open_store(uri_for(backend, tmp_path, f"order{n}")) as s:
            for batch in batches:
                s.write_spans(batch)
            records.append(s.get_trace(trace_id_for(9)).info.to_dict())
    assert all(r == records[0] for r in records)
    assert records[0]["state"] == "OK"


def test_nested_llm_usage_is_counted_once(store: Store) -> None:
    spans = make_trace(11, llm_calls=2, tokens=1000, nested_llm=True)
    store.write_spans(spans)
    usage = store.get_trace(trace_id_for(11)).info.token_usage
    # two chat spans of 1000 input tokens; the SDK span nested in the first is not added
    assert usage.input_tokens == 2000
    assert usage.total_tokens == 2 * 1250


def test_spans_written_by_two_store_instances_roll_up_together(store_uri: str) -> None:
    spans = make_trace(12, llm_calls=3)
    with open_store(store_uri) as a, open_store(store_uri) as b:
        a.write_spans(spans[2:])
        b.write_spans(spans[:2])
        a.write_spans(spans[1:3])  # overlap, from the instance that did not write them
        for s in (a, b):
            info = s.get_trace(trace_id_for(12)).info
            assert info.span_count == len(spans)
            assert info.state is TraceState.OK


def test_concurrent_threads_lose_nothing(store: Store) -> None:
    def work(first: int) -> None:
        for n in range(first, first + 5):
            store.write_spans(make_trace(n))

    threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    page = store.search_traces(max_results=100)
    assert len(page.traces) == 15
    assert all(t.span_count == 4 and t.state is TraceState.OK for t in page.traces)


# -- experiments ----------------------------------------------------------------------------
def test_experiments_created_on_write_and_listed_oldest_first(store: Store) -> None:
    created = store.get_or_create_experiment("first")
    assert store.get_or_create_experiment("first").experiment_id == created.experiment_id
    store.write_spans(make_trace(1, experiment="second"))
    names = [e.name for e in store.list_experiments()]
    assert names == ["first", "second"]
    assert [t.experiment for t in store.search_traces(["second"]).traces] == ["second"]
    assert store.search_traces(["first"]).traces == []
    assert store.search_traces([]).traces == []


# -- search ---------------------------------------------------------------------------------
def _seed(store: Store) -> None:
    """Five traces with known properties (ids 1..5 = trace_id_for(0..4))."""
    store.write_spans(
        make_trace(
            0,
            model="gpt-4o",
            tokens=50,
            duration_ms=100,
            tags={"env": "prod"},
            metadata={"user": "alice"},
        )
    )
    store.write_spans(
        make_trace(
            1,
            model="claude-sonnet-4",
            status="ERROR",
            tokens=500,
            duration_ms=3000,
            tags={"env": "dev"},
        )
    )
    store.write_spans(
        make_trace(
            2,
            model="claude-sonnet-4",
            tokens=2000,
            duration_ms=500,
            name="Retriever Agent",
            metadata={"user": "bob"},
        )
    )
    store.write_spans(
        make_trace(
            3,
            model="claude-sonnet-4",
            experiment="other",
            duration_ms=100,
            tags={"env": "prod", "team.name": "x y"},
        )
    )
    _root, *children = make_trace(4, model="gemini-2.0-flash", duration_ms=10)
    store.write_spans(children)  # in progress: no root yet


FILTER_CASES: list[tuple[str | None, list[int]]] = [
    (None, [4, 3, 2, 1, 0]),
    ("status = 'ERROR'", [1]),
    ("status = 'IN_PROGRESS'", [4]),
    ("trace.status != 'ERROR'", [4, 3, 2, 0]),
    ("tags.env = 'prod' AND status = 'OK'", [3, 0]),
    ("tags.env = 'prod' OR metadata.user = 'bob'", [3, 2, 0]),
    ("tags.`team.name` = 'x y'", [3]),
    ("tags.missing = 'x'", []),
    ("tags.env != 'prod'", [1]),
    ("metadata.user IN ('alice', 'bob')", [2, 0]),
    ("metadata.user NOT IN ('alice')", [2]),
    ("execution_time_ms > 2999", [1]),
    ("execution_time_ms < 100", []),
    ("timestamp_ms >= 1700000002000", [4, 3, 2]),
    ("total_tokens > 4000", [2]),
    ("input_tokens <= 100.5", [0]),
    ("model = 'gpt-4o'", [0]),
    ("model != 'gpt-4o'", [4, 3, 2, 1]),
    ("model LIKE 'claude%'", [3, 2, 1]),
    ("model IN ('gemini-2.0-flash', 'nope')", [4]),
    ("provider = 'anthropic'", [3, 2, 1]),
    ("provider NOT IN ('anthropic')", [4, 0]),
    ("name LIKE '%Agent'", [2]),
    ("name LIKE '%agent'", [3, 1, 0]),
    ("name ILIKE '%AGENT'", [3, 2, 1, 0]),
    ("name NOT LIKE 'support%'", [2]),
    ("span.name = 'lookup_order'", [4, 3, 2, 1, 0]),
    ("span.type = 'AGENT'", [3, 2, 1, 0]),
    ("span.type != 'AGENT'", [4]),
    ("span.status = 'ERROR'", [1]),
    ("span.model = 'gpt-4o'", [0]),
    ("span.attributes.`gen_ai.response.id` = 'resp_2_0'", [2]),
    ("span.attributes.retries = 1", [4, 1]),
    ("span.attributes.retries > 1", [2]),
    ("span.attributes.`gen_ai.request.temperature` < 0.5", [4, 3, 2, 1, 0]),
    ("client_request_id = 'req-2'", [2]),
    ("experiment = 'other'", [3]),
    ("span_count = 4 AND (status = 'OK' OR status = 'ERROR')", [3, 2, 1, 0]),
    ("service_name = 'support-bot' AND cost_usd > 0", [3, 2, 1, 0]),
    ("model = 'gemini-2.0-flash' AND cost_usd > 0", []),
]


def _ids(traces: list) -> list[int]:  # type: ignore[type-arg]
    return [int(t.trace_id, 16) - 1 for t in traces]


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A read-only store holding :func:`_seed`'s traces (shared by the query tests)."""
    s = open_store(uri_for(request.param, tmp_path_factory.mktemp("seeded")))
    _seed(s)
    yield s
    s.close()


@pytest.mark.parametrize(("filter_string", "expected"), FILTER_CASES)
def test_filter_grammar(seeded: Store, filter_string: str | None, expected: list[int]) -> None:
    page = seeded.search_traces(filter_string=filter_string, max_results=50)
    assert _ids(page.traces) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "status = ",
        "status == 'OK'",
        "nosuchfield = 1",
        "total_tokens = 'x'",
        "(status = 'OK'",
        "tags.x < 'a'",
    ],
)
def test_malformed_filter_is_a_clear_error(seeded: Store, bad: str) -> None:
    with pytest.raises(FilterError):
        seeded.search_traces(filter_string=bad)


def test_bad_page_token_and_max_results(seeded: Store) -> None:
    with pytest.raises(FilterError):
        seeded.search_traces(page_token="not-a-token")
    with pytest.raises(FilterError):
        seeded.search_traces(max_results=0)
    with pytest.raises(FilterError):
        seeded.search_traces(order_by=["tags.env DESC"])


@pytest.mark.parametrize(
    "order_by",
    [
        None,
        ["execution_time_ms DESC"],
        ["execution_time_ms ASC"],
        ["name", "timestamp_ms DESC"],
        ["total_tokens DESC"],
    ],
)
def test_order_and_pagination(seeded: Store, order_by: list[str] | None) -> None:
    store = seeded
    everything = store.search_traces(order_by=order_by, max_results=100).traces
    pages, token = [], None
    while True:
        page = store.search_traces(order_by=order_by, max_results=2, page_token=token)
        pages.extend(page.traces)
        token = page.next_page_token
        if token is None:
            break
    assert [t.trace_id for t in pages] == [t.trace_id for t in everything]
    assert len(everything) == 5
    if order_by == ["execution_time_ms DESC"]:
        # the in-progress trace has no duration: nulls come last
        assert _ids(everything)[0] == 1 and _ids(everything)[-1] == 4


# -- tags and assessments -------------------------------------------------------------------
def test_trace_tags_set_override_and_delete(store: Store) -> None:
    _seed(store)
    tid = trace_id_for(0)
    store.set_trace_tag(tid, "reviewed", "yes")
    store.set_trace_tag(tid, "env", "staging")  # overrides the span's tag
    info = store.get_trace(tid).info
    assert info.tags == {"env": "staging", "reviewed": "yes"}
    assert _ids(store.search_traces(filter_string="tags.env = 'prod'").traces) == [3]
    store.delete_trace_tag(tid, "env")
    assert store.get_trace(tid).info.tags == {"reviewed": "yes"}
    # later spans of the trace keep the overrides
    store.write_spans([make_trace(0, llm_calls=3)[3]])
    assert store.get_trace(tid).info.tags == {"reviewed": "yes"}
    with pytest.raises(NotFoundError):
        store.set_trace_tag("f" * 32, "k", "v")


def test_assessments_are_stored_and_searchable(store: Store) -> None:
    _seed(store)
    logged = store.log_assessment(
        Assessment(
            trace_id_for(0),
            "correct",
            True,
            source_type=AssessmentSource.LLM_JUDGE,
            source_id="judge-1",
            rationale="ok",
        )
    )
    assert logged.assessment_id and logged.time_ms > 0
    store.log_assessment(Assessment(trace_id_for(1), "correct", False))
    store.log_assessment(
        Assessment(trace_id_for(1), "score", 0.9, span_id=make_trace(1)[1].span_id)
    )
    store.log_assessment(Assessment(trace_id_for(2), "score", 0.2))
    store.log_assessment(
        Assessment(trace_id_for(2), "answer", {"text": "ships"}, kind=AssessmentKind.EXPECTATION)
    )
    cases = {
        "feedback.correct = TRUE": [0],
        "feedback.correct = FALSE": [1],
        "feedback.correct != TRUE": [1],
        "feedback.score > 0.5": [1],
        "feedback.score <= 0.5": [2],
        "feedback.score IN (0.2, 0.3)": [2],
        "expectation.answer LIKE '%ships%'": [2],
        "feedback.answer LIKE '%ships%'": [],
    }
    for text, expected in cases.items():
        assert _ids(store.search_traces(filter_string=text).traces) == expected, text
    trace = store.get_trace(trace_id_for(0))
    assert [
        (a.name, a.value, a.source_type, a.source_id, a.rationale) for a in trace.assessments
    ] == [("correct", True, AssessmentSource.LLM_JUDGE, "judge-1", "ok")]
    assert len(list(store.iter_assessments())) == 5
    with pytest.raises(NotFoundError):
        store.log_assessment(Assessment("e" * 32, "x", 1))


def test_unknown_trace_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_trace("0" * 32)


# -- identical answers across stores --------------------------------------------------------
def test_all_stores_give_identical_results(tmp_path: Path) -> None:
    stores = {b: open_store(uri_for(b, tmp_path, b)) for b in BACKENDS}
    try:
        for s in stores.values():
            _seed(s)
            s.set_trace_tag(trace_id_for(2), "label", "good")
            s.log_assessment(
                Assessment(trace_id_for(2), "score", 0.7, assessment_id="a1", time_ms=5)
            )
        queries = [text for text, _ in FILTER_CASES] + [
            "feedback.score > 0.5",
            "tags.label = 'good'",
        ]
        for text in queries:
            for order in (None, ["execution_time_ms DESC", "name"]):
                answers = {
                    b: [
                        t.to_dict()
                        for t in s.search_traces(filter_string=text, order_by=order).traces
                    ]
                    for b, s in stores.items()
                }
                assert answers["parquet"] == answers["sqlite"], text
                assert answers["delta"] == answers["sqlite"], text
        for n in range(5):
            traces = {b: s.get_trace(trace_id_for(n)) for b, s in stores.items()}
            dicts = {
                b: (
                    t.info.to_dict(),
                    [_span_dict(x) for x in t.spans],
                    [a.to_dict() for a in t.assessments],
                )
                for b, t in traces.items()
            }
            assert dicts["parquet"] == dicts["sqlite"]
            assert dicts["delta"] == dicts["sqlite"]
    finally:
        for s in stores.values():
            s.close()


def test_iter_spans_returns_every_span(store: Store) -> None:
    spans = make_traces(0, 4)
    store.write_spans(spans)
    got = [s for batch in store.iter_spans(batch_size=5) for s in batch]
    assert sorted((s.trace_id, s.span_id) for s in got) == sorted(
        (s.trace_id, s.span_id) for s in spans
    )
    assert all(len(b) <= 5 for b in store.iter_spans(batch_size=5))
