"""``SpanlakeClient``: explicit parents by id, from many threads, no context involved."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tracing._helpers import attributes_of, by_name, inputs, outputs, parent_of, span_id, trace_id

from spanlake.semconv import spanlake_attrs
from spanlake.tracing import SpanlakeClient, SpanType, get_current_active_span, start_span


def test_trace_with_child_as_in_the_mlflow_docs(span_exporter: InMemorySpanExporter) -> None:
    client = SpanlakeClient()
    root = client.start_trace(
        name="simple-rag-agent",
        inputs={"query": "Demo", "temperature": 0},
        tags={"team": "search"},
        span_type=SpanType.AGENT,
    )
    child = client.start_span(
        "search",
        request_id=root.request_id,  # MLflow 2 spelling
        parent_id=root.span_id,
        inputs={"query_text": "demo", "num_results": 3},
        span_type="RETRIEVER",
    )
    assert get_current_active_span() is None  # nothing was made current
    client.end_span(root.trace_id, span_id=child.span_id, outputs=["Test Result"])
    client.end_trace(root.trace_id, outputs={"output": ["Test Result"]})
    spans = by_name(span_exporter)
    assert parent_of(spans["simple-rag-agent"]) is None
    assert parent_of(spans["search"]) == span_id(spans["simple-rag-agent"])
    assert inputs(spans["search"]) == {"query_text": "demo", "num_results": 3}
    assert outputs(spans["search"]) == ["Test Result"]
    assert outputs(spans["simple-rag-agent"]) == {"output": ["Test Result"]}
    root_attrs = attributes_of(spans["simple-rag-agent"])
    assert root_attrs[spanlake_attrs.TRACE_TAG_PREFIX + "team"] == "search"
    assert root_attrs[spanlake_attrs.SPAN_TYPE] == "AGENT"
    assert spans["search"].status.status_code is StatusCode.OK


def test_start_trace_ignores_the_current_context(span_exporter: InMemorySpanExporter) -> None:
    client = SpanlakeClient()
    with start_span("ambient"):
        root = client.start_trace("detached")
    client.end_trace(root.trace_id)
    spans = by_name(span_exporter)
    assert parent_of(spans["detached"]) is None
    assert trace_id(spans["detached"]) != trace_id(spans["ambient"])


def test_parent_defaults_to_root_and_end_trace_closes_leftovers(
    span_exporter: InMemorySpanExporter,
) -> None:
    client = SpanlakeClient()
    root = client.start_trace("root")
    a = client.start_span("a", trace_id=root.trace_id)
    client.start_span("b", trace_id=root.trace_id, parent_id=a.span_id)
    client.end_trace(root.trace_id, outputs="done", status="ERROR")
    spans = by_name(span_exporter)
    assert set(spans) == {"root", "a", "b"}
    assert parent_of(spans["a"]) == span_id(spans["root"])
    assert parent_of(spans["b"]) == span_id(spans["a"])
    assert spans["root"].status.status_code is StatusCode.ERROR
    assert [s.name for s in span_exporter.get_finished_spans()] == ["b", "a", "root"]


def test_child_of_an_ended_parent_is_still_linked_by_id(
    span_exporter: InMemorySpanExporter,
) -> None:
    client = SpanlakeClient()
    root = client.start_trace("root")
    a = client.start_span("a", root.trace_id, root.span_id)
    client.end_span(root.trace_id, a.span_id)
    late = client.start_span("late", root.trace_id, a.span_id)
    client.end_span(late.trace_id, late.span_id)
    client.end_trace(root.trace_id)
    spans = by_name(span_exporter)
    assert parent_of(spans["late"]) == span_id(spans["a"])
    assert trace_id(spans["late"]) == trace_id(spans["root"])


def test_unknown_ids_warn_instead_of_raising(
    span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    client = SpanlakeClient()
    with caplog.at_level(logging.WARNING, logger="spanlake.tracing"):
        client.end_span("0" * 31 + "1", "0" * 15 + "1")
        client.end_trace("not-hex")
        orphan = client.start_span("orphan", trace_id="garbage", parent_id="zz")
    assert caplog.text.count("spanlake:") == 3
    client.end_trace(orphan.trace_id)
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "orphan" and parent_of(span) is None


def test_many_threads_build_correct_trees(span_exporter: InMemorySpanExporter) -> None:
    """Each worker owns a trace; its steps run on other threads of a shared pool."""
    client = SpanlakeClient()
    traces = 8
    steps = 5
    start = threading.Barrier(traces)

    def step(trace_hex: str, parent_hex: str, n: int) -> None:
        span = client.start_span(f"step-{n}", trace_hex, parent_hex, inputs={"n": n})
        inner = client.start_span(f"inner-{n}", trace_hex, span.span_id)
        client.end_span(trace_hex, inner.span_id, outputs=n)
        client.end_span(trace_hex, span.span_id, outputs=n * 2)

    def run_trace(i: int, pool: ThreadPoolExecutor) -> str:
        start.wait()
        root = client.start_trace(f"trace-{i}", inputs={"i": i})
        futures = [pool.submit(step, root.trace_id, root.span_id, n) for n in range(steps)]
        for future in futures:
            future.result()
        client.end_trace(root.trace_id, outputs=i)
        return root.trace_id

    with ThreadPoolExecutor(max_workers=4) as pool, ThreadPoolExecutor(traces) as owners:
        ids = list(owners.map(lambda i: run_trace(i, pool), range(traces)))

    spans = span_exporter.get_finished_spans()
    assert len(spans) == traces * (1 + 2 * steps)
    by_id = {span_id(s): s for s in spans}
    for hex_id in ids:
        members = [s for s in spans if format(trace_id(s), "032x") == hex_id]
        assert len(members) == 1 + 2 * steps
        (root,) = [s for s in members if s.parent is None]
        for s in members:
            if s.name.startswith("step-"):
                assert parent_of(s) == span_id(root)
            elif s.name.startswith("inner-"):
                parent = by_id[parent_of(s) or 0]
                assert parent.name == "step-" + s.name.split("-")[1]
    assert client._traces == {}  # everything ended is released


def test_client_spans_can_be_made_current_with_otel(span_exporter: InMemorySpanExporter) -> None:
    client = SpanlakeClient()
    root = client.start_trace("root")
    with otel_trace.use_span(root.otel_span, end_on_exit=False), start_span("fluent-child"):
        pass
    client.end_trace(root.trace_id)
    spans = by_name(span_exporter)
    assert parent_of(spans["fluent-child"]) == span_id(spans["root"])
