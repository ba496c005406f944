"""The context-based API: ``start_span``, ``get_current_active_span``, ``update_current_trace``.

"Current" is OTel's current span (``opentelemetry.context``), so these see and nest with
spans of any OTel instrumentation, not only ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Span

from spanlake.semconv import spanlake_attrs
from spanlake.semconv.span_type import SpanType
from spanlake.tracing import _lifecycle
from spanlake.tracing._lifecycle import logger
from spanlake.tracing._span import LiveSpan


class start_span:  # a function-like name, as in MLflow and OTel
    """Context manager: a span around a block, current inside it.

    ``with start_span("retrieve", span_type=SpanType.RETRIEVER) as span:``
    then ``span.set_inputs(...)`` / ``span.set_outputs(...)``. An exception leaving the
    block ends the span with ERROR and an ``exception`` event and propagates unchanged.
    """

    __slots__ = ("_attributes", "_live", "_name", "_span", "_span_type", "_token")

    def __init__(
        self,
        name: str = "span",
        span_type: SpanType | str = SpanType.UNKNOWN,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._span_type = span_type
        self._attributes = attributes
        self._span: Span | None = None
        self._token: object = None

    def __enter__(self) -> LiveSpan:
        try:
            attributes = _lifecycle.start_attributes(self._span_type, self._attributes)
            self._span = _lifecycle.tracer().start_span(str(self._name), attributes=attributes)
            self._token = context_api.attach(trace_api.set_span_in_context(self._span))
        except Exception:
            logger.debug("spanlake: could not start span %r", self._name, exc_info=True)
            if self._span is None:
                self._span = trace_api.INVALID_SPAN  # a no-op span keeps the block running
        return LiveSpan(self._span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span, token = self._span, self._token
        self._span, self._token = None, None
        if token is not None:
            try:
                context_api.detach(token)  # type: ignore[arg-type]
            except Exception:
                logger.debug("spanlake: could not detach context", exc_info=True)
        if span is None:
            return
        if exc is not None:
            _lifecycle.fail(span, exc)
        try:
            span.end()
        except Exception:
            logger.debug("spanlake: could not end span", exc_info=True)


def get_current_active_span() -> LiveSpan | None:
    """The current span (ours or any OTel instrumentation's), or None outside any span."""
    span = trace_api.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    return LiveSpan(span)


def get_active_trace_id() -> str | None:
    """The current trace's id (32 hex), or None outside any span."""
    ctx = trace_api.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def update_current_trace(
    tags: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    client_request_id: str | None = None,
    user: str | None = None,
    session: str | None = None,
) -> None:
    """Set trace-level fields from wherever the code is in the trace.

    They are written as attributes of the current span (``spanlake.trace.tag.<k>``,
    ``spanlake.trace.metadata.<k>``, ``spanlake.trace.client_request_id``, ``user.id``,
    ``session.id``); the store merges them over all spans of the trace. Outside any span
    this logs a warning and does nothing.
    """
    try:
        span = trace_api.get_current_span()
        if not span.get_span_context().is_valid:
            logger.warning("spanlake: update_current_trace called outside a span; ignored")
            return
        if not span.is_recording():
            return  # a sampled-out span: nothing is kept anyway
        span.set_attributes(trace_attributes(tags, metadata, client_request_id, user, session))
    except Exception:
        logger.debug("spanlake: update_current_trace failed", exc_info=True)


def trace_attributes(
    tags: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    client_request_id: str | None = None,
    user: str | None = None,
    session: str | None = None,
) -> dict[str, str]:
    """The span attributes that carry trace-level tags, metadata and ids."""
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        out[spanlake_attrs.TRACE_TAG_PREFIX + str(key)] = str(value)
    for key, value in (metadata or {}).items():
        out[spanlake_attrs.TRACE_METADATA_PREFIX + str(key)] = str(value)
    if client_request_id is not None:
        out[spanlake_attrs.TRACE_CLIENT_REQUEST_ID] = str(client_request_id)
    if user is not None:
        out[spanlake_attrs.USER_ID] = str(user)
    if session is not None:
        out[spanlake_attrs.SESSION_ID] = str(session)
    return out
