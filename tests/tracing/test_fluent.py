"""``start_span``, ``get_current_active_span``, ``update_current_trace``."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from tracing._helpers import (
    attributes_of,
    by_name,
    event_attrs,
    inputs,
    outputs,
    parent_of,
    span_id,
    trace_id,
)

from spanlake.semconv import gen_ai, spanlake_attrs
from spanlake.tracing import (
    SpanType,
    get_active_trace_id,
    get_current_active_span,
    start_span,
    trace,
    update_current_trace,
)


def test_start_span_methods_land_on_the_otel_span(span_exporter: InMemorySpanExporter) -> None:
    with start_span("final_answer", span_type=SpanType.TOOL, attributes={"a": 1}) as span:
        span.set_inputs({"query": "q"})
        span.set_outputs({"generated_text": "answer"})
        span.set_attribute("model_name", "m")
        span.set_attribute("usage", {"prompt_tokens": 3})
        span.set_attribute("tags", ["x", "y"])
        span.set_attributes({"prompt_tokens": 3, "ratio": 0.5, "ok": True})
        span.add_event("retry", {"attempt": 2, "detail": {"why": "429"}})
        assert span.name == "final_answer"
        assert span.span_type == "TOOL"
        assert len(span.span_id) == 16 and len(span.trace_id) == 32
        assert span.request_id == span.trace_id
        assert span.parent_id is None
        assert span.otel_span is otel_trace.get_current_span()
        assert get_current_active_span() == span
    (recorded,) = span_exporter.get_finished_spans()
    attrs = attributes_of(recorded)
    assert recorded.name == "final_answer"
    assert inputs(recorded) == {"query": "q"}
    assert outputs(recorded) == {"generated_text": "answer"}
    assert attrs["model_name"] == "m"
    assert json.loads(str(attrs["usage"])) == {"prompt_tokens": 3}
    assert tuple(attrs["tags"]) == ("x", "y")
    assert (attrs["prompt_tokens"], attrs["ratio"], attrs["ok"]) == (3, 0.5, True)
    assert attrs["a"] == 1
    assert attrs[spanlake_attrs.SPAN_TYPE] == "TOOL"
    assert attrs[gen_ai.OPERATION_NAME] == "execute_tool"
    (event,) = recorded.events
    assert event.name == "retry"
    assert event_attrs(event)["attempt"] == 2
    assert json.loads(str(event_attrs(event)["detail"])) == {"why": "429"}
    assert format(span_id(recorded), "016x") == span.span_id
    assert get_current_active_span() is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("OK", StatusCode.OK),
        ("error", StatusCode.ERROR),
        (StatusCode.ERROR, StatusCode.ERROR),
        (Status(StatusCode.OK), StatusCode.OK),
        ("UNSET", StatusCode.UNSET),
        ("bogus", StatusCode.UNSET),
    ],
)
def test_set_status_accepts_names_codes_and_status(
    span_exporter: InMemorySpanExporter, status: object, expected: StatusCode
) -> None:
    with start_span("s") as span:
        span.set_status(status, "why")  # type: ignore[arg-type]
    (recorded,) = span_exporter.get_finished_spans()
    assert recorded.status.status_code is expected
    if expected is StatusCode.ERROR:
        assert recorded.status.description == "why"


def test_exception_in_block_ends_span_as_error_and_propagates(
    span_exporter: InMemorySpanExporter,
) -> None:
    err = ZeroDivisionError("division by zero")
    with pytest.raises(ZeroDivisionError) as info, start_span("calc"):
        raise err
    assert info.value is err
    (recorded,) = span_exporter.get_finished_spans()
    assert recorded.status.status_code is StatusCode.ERROR
    assert [e.name for e in recorded.events] == ["exception"]
    assert get_current_active_span() is None


def test_start_span_nests_and_default_name(span_exporter: InMemorySpanExporter) -> None:
    with start_span() as outer, start_span("inner") as inner:
        assert inner.parent_id == outer.span_id
        assert get_active_trace_id() == outer.trace_id
    spans = by_name(span_exporter)
    assert parent_of(spans["inner"]) == span_id(spans["span"])
    assert get_active_trace_id() is None


def test_get_current_active_span_sees_foreign_otel_spans() -> None:
    tracer = otel_trace.get_tracer("other")
    assert get_current_active_span() is None
    with tracer.start_as_current_span("foreign") as foreign:
        current = get_current_active_span()
        assert current is not None
        assert current.otel_span is foreign
        assert current.span_type == "UNKNOWN"


def test_update_current_trace_sets_trace_level_attributes(
    span_exporter: InMemorySpanExporter,
) -> None:
    @trace
    def handle() -> None:
        update_current_trace(
            tags={"env": "prod", "attempt": 2},
            metadata={"app_version": "1.2"},
            client_request_id="req-7",
            user="alice",
            session="s-1",
        )

    with start_span("root"):
        handle()
        update_current_trace(tags={"root_tag": "yes"})
    spans = by_name(span_exporter)
    attrs = attributes_of(spans["handle"])
    assert attrs[spanlake_attrs.TRACE_TAG_PREFIX + "env"] == "prod"
    assert attrs[spanlake_attrs.TRACE_TAG_PREFIX + "attempt"] == "2"
    assert attrs[spanlake_attrs.TRACE_METADATA_PREFIX + "app_version"] == "1.2"
    assert attrs[spanlake_attrs.TRACE_CLIENT_REQUEST_ID] == "req-7"
    assert attrs[spanlake_attrs.USER_ID] == "alice"
    assert attrs[spanlake_attrs.SESSION_ID] == "s-1"
    root_attrs = attributes_of(spans["root"])
    assert root_attrs[spanlake_attrs.TRACE_TAG_PREFIX + "root_tag"] == "yes"
    assert trace_id(spans["root"]) == trace_id(spans["handle"])


def test_update_current_trace_outside_a_span_warns_and_does_nothing(
    span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanlake.tracing"):
        update_current_trace(tags={"a": "b"})
    assert "outside a span" in caplog.text
    assert span_exporter.get_finished_spans() == ()


def test_set_inputs_twice_keeps_one_truncation_mark(span_exporter: InMemorySpanExporter) -> None:
    with start_span("s") as span:
        span.set_inputs("x" * 400_000)
        span.set_inputs("x" * 500_000)
        span.set_outputs("y" * 300_000)
        span.set_inputs("small")
    (recorded,) = span_exporter.get_finished_spans()
    marks = list(attributes_of(recorded)[spanlake_attrs.TRUNCATED])
    assert len(marks) == 1
    assert marks[0].startswith(spanlake_attrs.SPAN_OUTPUTS + ":")
    assert int(marks[0].rsplit(":", 1)[1]) >= 300_000
    assert inputs(recorded) == "small"
