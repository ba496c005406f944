"""spanlake's manual tracing API, MLflow-style, on plain OpenTelemetry spans.

    from spanlake.tracing import trace, start_span, update_current_trace, SpanType

    @trace(span_type=SpanType.TOOL)
    def search(query: str) -> list[str]: ...

    with start_span("final_answer") as span:
        span.set_inputs({"query": query})
        span.set_outputs(answer)

Spans come from the global OTel tracer provider and the current OTel context, so they nest
with the provider instrumentations' spans and with any other OTel instrumentation. For
callbacks and threads, where context does not flow, use :class:`SpanlakeClient`.
Inputs, outputs and span types ride on span attributes (``spanlake.semconv.spanlake_attrs``).
Tracing never raises into the application: a telemetry failure is logged and skipped.
"""

from spanlake.semconv.span_type import SpanType
from spanlake.tracing._client import SpanlakeClient
from spanlake.tracing._decorator import trace
from spanlake.tracing._fluent import (
    get_active_trace_id,
    get_current_active_span,
    start_span,
    update_current_trace,
)
from spanlake.tracing._span import LiveSpan

__all__ = [
    "LiveSpan",
    "SpanType",
    "SpanlakeClient",
    "get_active_trace_id",
    "get_current_active_span",
    "start_span",
    "trace",
    "update_current_trace",
]
