"""``SpanlakeClient``: explicit, thread-safe tracing for callbacks and threads.

MLflow's ``MlflowClient`` tracing API on OTel spans. Nothing here reads or changes the
current context: a child's parent is given by id, looked up among the client's live spans
and passed to OTel as an explicit parent context. So a trace can be opened in one thread,
extended from callbacks in others and closed in a third.

Live spans are kept in a lock-protected dict until ended; a span never ended stays there
(end the trace to release everything that is left open).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from spanlake.semconv import spanlake_attrs
from spanlake.semconv.span_type import SpanType
from spanlake.tracing import _lifecycle
from spanlake.tracing._fluent import trace_attributes
from spanlake.tracing._lifecycle import logger
from spanlake.tracing._span import LiveSpan

_Status = Status | StatusCode | str


class _OpenTrace:
    """The live spans of one trace, in start order (root first)."""

    __slots__ = ("root_id", "spans")

    def __init__(self, root_id: str) -> None:
        self.root_id = root_id
        self.spans: dict[str, Span] = {}


class SpanlakeClient:
    """Start and end traces and spans by id, from any thread.

    ``root = client.start_trace("agent", inputs=...)``;
    ``child = client.start_span("search", trace_id=root.trace_id, parent_id=root.span_id)``;
    ``client.end_span(root.trace_id, child.span_id, outputs=...)``;
    ``client.end_trace(root.trace_id, outputs=...)``.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        """Spans go to ``tracer_provider``, by default the global one (read at each call)."""
        self._provider = tracer_provider
        self._lock = threading.Lock()
        self._traces: dict[str, _OpenTrace] = {}

    def start_trace(
        self,
        name: str,
        span_type: SpanType | str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        start_time_ns: int | None = None,
    ) -> LiveSpan:
        """Open a new trace: its root span, parented to nothing (not the current span)."""
        span = self._start(name, Context(), span_type, inputs, attributes, start_time_ns, tags)
        if span.get_span_context().is_valid:
            trace_id, span_id = _lifecycle.hex_trace_id(span), _lifecycle.hex_span_id(span)
            with self._lock:
                opened = self._traces.setdefault(trace_id, _OpenTrace(span_id))
                opened.spans[span_id] = span
        return LiveSpan(span)

    def start_span(
        self,
        name: str,
        trace_id: str | None = None,
        parent_id: str | None = None,
        span_type: SpanType | str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        start_time_ns: int | None = None,
        *,
        request_id: str | None = None,
    ) -> LiveSpan:
        """Open a child of span ``parent_id`` (default: the trace's root) in trace ``trace_id``.

        ``request_id`` is MLflow 2's name for ``trace_id``. A parent that already ended is
        still used as the parent, by id; an unknown or malformed id logs a warning and the
        span starts a new trace rather than failing the caller.
        """
        trace_id = _hex(trace_id if trace_id is not None else request_id, 32)
        parent = self._parent(trace_id, _hex(parent_id, 16))
        if parent is None:
            logger.warning(
                "spanlake: start_span(%r): no trace %r / parent %r; starting a new trace",
                name,
                trace_id,
                parent_id,
            )
            return self.start_trace(name, span_type, inputs, attributes, None, start_time_ns)
        context = _lifecycle.parent_context(parent)
        span = self._start(name, context, span_type, inputs, attributes, start_time_ns, None)
        if span.get_span_context().is_valid:
            span_id = _lifecycle.hex_span_id(span)
            actual_trace = _lifecycle.hex_trace_id(span)
            with self._lock:
                opened = self._traces.get(actual_trace)
                if opened is not None:
                    opened.spans[span_id] = span
                else:  # its trace was already ended: track the span on its own
                    lone = self._traces.setdefault(actual_trace, _OpenTrace(""))
                    lone.spans[span_id] = span
        return LiveSpan(span)

    def end_span(
        self,
        trace_id: str | None = None,
        span_id: str | None = None,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: _Status = "OK",
        end_time_ns: int | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """End one span (default status OK, as in MLflow); unknown ids log a warning."""
        key_trace = _hex(trace_id if trace_id is not None else request_id, 32)
        key_span = _hex(span_id, 16)
        span = None
        with self._lock:
            opened = self._traces.get(key_trace or "")
            if opened is not None and key_span is not None:
                span = opened.spans.pop(key_span, None)
                if not opened.spans:
                    del self._traces[key_trace or ""]
        if span is None:
            logger.warning("spanlake: end_span: no live span %r in trace %r", span_id, trace_id)
            return
        _finish(span, outputs, attributes, status, end_time_ns)

    def end_trace(
        self,
        trace_id: str | None = None,
        outputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        status: _Status = "OK",
        end_time_ns: int | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """End the trace's root span, first ending any of its spans still open."""
        key = _hex(trace_id if trace_id is not None else request_id, 32)
        with self._lock:
            opened = self._traces.pop(key or "", None)
        if opened is None:
            logger.warning("spanlake: end_trace: no open trace %r", trace_id)
            return
        root = opened.spans.pop(opened.root_id, None)
        for leftover in reversed(list(opened.spans.values())):  # children before parents
            try:
                leftover.end(end_time_ns)
            except Exception:
                logger.debug("spanlake: could not end a span", exc_info=True)
        if root is not None:
            _finish(root, outputs, attributes, status, end_time_ns)

    # --- internals ------------------------------------------------------------------------
    def _tracer(self) -> trace_api.Tracer:
        if self._provider is None:
            return _lifecycle.tracer()
        return self._provider.get_tracer("spanlake.tracing")

    def _start(
        self,
        name: str,
        context: Context,
        span_type: SpanType | str,
        inputs: Any,
        attributes: Mapping[str, Any] | None,
        start_time_ns: int | None,
        tags: Mapping[str, Any] | None,
    ) -> Span:
        try:
            attrs = _lifecycle.start_attributes(span_type, attributes)
            if tags:
                attrs.update(trace_attributes(tags=tags))
            span = self._tracer().start_span(
                str(name), context=context, attributes=attrs, start_time=start_time_ns
            )
        except Exception:
            logger.debug("spanlake: could not start span %r", name, exc_info=True)
            return trace_api.INVALID_SPAN
        if inputs is not None:
            _lifecycle.set_value(span, spanlake_attrs.SPAN_INPUTS, inputs)
        return span

    def _parent(self, trace_id: str | None, parent_id: str | None) -> Span | None:
        if trace_id is None:
            return None
        with self._lock:
            opened = self._traces.get(trace_id)
            if opened is not None:
                found = opened.spans.get(parent_id or opened.root_id)
                if found is not None:
                    return found
                if parent_id is None:
                    parent_id = opened.root_id or None
        if parent_id is None:
            return None
        # Ended or foreign parent: parent by id, so the store still links the two.
        return NonRecordingSpan(
            SpanContext(
                int(trace_id, 16), int(parent_id, 16), False, TraceFlags(TraceFlags.SAMPLED)
            )
        )


def _finish(
    span: Span,
    outputs: Any,
    attributes: Mapping[str, Any] | None,
    status: _Status,
    end_time_ns: int | None,
) -> None:
    live = LiveSpan(span)
    if outputs is not None:
        live.set_outputs(outputs)
    if attributes:
        live.set_attributes(attributes)
    if status is not None:
        live.set_status(status)
    try:
        span.end(end_time_ns)
    except Exception:
        logger.debug("spanlake: could not end a span", exc_info=True)


def _hex(value: object, digits: int) -> str | None:
    """A canonical lower-case hex id, or None when ``value`` is not one."""
    if value is None:
        return None
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value), 16)
        except ValueError:
            return None
    if number <= 0 or number >= 1 << (4 * digits):
        return None
    return format(number, f"0{digits}x")
