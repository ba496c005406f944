"""Small readers over finished spans, shared by the tracing tests."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.semconv import spanlake_attrs


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


def attributes_of(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes, loosely typed for assertions."""
    return dict(span.attributes or {})


def event_attrs(event: Any) -> dict[str, Any]:
    return dict(event.attributes or {})


def inputs(span: ReadableSpan) -> Any:
    return json.loads(str((span.attributes or {})[spanlake_attrs.SPAN_INPUTS]))


def outputs(span: ReadableSpan) -> Any:
    return json.loads(str((span.attributes or {})[spanlake_attrs.SPAN_OUTPUTS]))


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)
