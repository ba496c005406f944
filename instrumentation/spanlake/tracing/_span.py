"""``LiveSpan``: the MLflow-style handle on an OTel span (``set_inputs``, ``set_outputs``...).

A thin, stateless view: everything it records lives on the OTel span itself, as ordinary
attributes and events, so two handles on the same span agree and nothing here needs a lock.
Every method is safe: a telemetry failure is logged, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from spanlake.semconv import gen_ai, spanlake_attrs
from spanlake.semconv.span_type import SpanType, span_type_from_operation
from spanlake.tracing import _lifecycle
from spanlake.tracing._lifecycle import logger


class LiveSpan:
    """A started span; what ``start_span``, ``get_current_active_span`` and the client return."""

    __slots__ = ("_span",)

    def __init__(self, otel_span: Span) -> None:
        self._span = otel_span

    # --- identity -------------------------------------------------------------------------
    @property
    def otel_span(self) -> Span:
        """The underlying OpenTelemetry span (e.g. for ``opentelemetry.trace.use_span``)."""
        return self._span

    @property
    def span_id(self) -> str:
        """16 hex digits, as in OTLP and the store."""
        return _lifecycle.hex_span_id(self._span)

    @property
    def trace_id(self) -> str:
        """32 hex digits: the trace's id in the store, Jaeger, Tempo..."""
        return _lifecycle.hex_trace_id(self._span)

    @property
    def request_id(self) -> str:
        """MLflow 2's name for :attr:`trace_id`."""
        return self.trace_id

    @property
    def parent_id(self) -> str | None:
        """The parent's span id (16 hex), or None for a root span."""
        parent = getattr(self._span, "parent", None)
        return None if parent is None else format(parent.span_id, "016x")

    @property
    def name(self) -> str:
        return str(getattr(self._span, "name", ""))

    @property
    def span_type(self) -> str:
        """As the store will read it: ours, else implied by ``gen_ai.operation.name``."""
        attributes = getattr(self._span, "attributes", None) or {}
        value = attributes.get(spanlake_attrs.SPAN_TYPE)
        if value is not None:
            return str(value)
        implied = span_type_from_operation(attributes.get(gen_ai.OPERATION_NAME))
        return (implied or SpanType.UNKNOWN).value

    # --- recording ------------------------------------------------------------------------
    def set_inputs(self, inputs: Any) -> None:
        """Record the span's inputs (any Python value, stored as capped JSON)."""
        _lifecycle.set_value(self._span, spanlake_attrs.SPAN_INPUTS, inputs)

    def set_outputs(self, outputs: Any) -> None:
        """Record the span's outputs (any Python value, stored as capped JSON)."""
        _lifecycle.set_value(self._span, spanlake_attrs.SPAN_OUTPUTS, outputs)

    def set_attribute(self, key: str, value: Any) -> None:
        """One attribute; a value OTel cannot hold (dict, object) is stored as JSON text."""
        try:
            coerced = _lifecycle.attribute_value(value)
            if coerced is not None:
                self._span.set_attribute(str(key), coerced)
        except Exception:
            logger.debug("spanlake: could not set attribute %r", key, exc_info=True)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in dict(attributes).items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        timestamp_ns: int | None = None,
    ) -> None:
        """An event on the span (OTel event: name, time, attributes)."""
        try:
            attrs = {}
            for key, value in (attributes or {}).items():
                coerced = _lifecycle.attribute_value(value)
                if coerced is not None:
                    attrs[str(key)] = coerced
            self._span.add_event(str(name), attrs, timestamp_ns)
        except Exception:
            logger.debug("spanlake: could not add event %r", name, exc_info=True)

    def set_status(self, status: Status | StatusCode | str, description: str | None = None) -> None:
        """``"OK"`` / ``"ERROR"`` / ``"UNSET"`` (any case), a ``StatusCode`` or a ``Status``."""
        try:
            resolved = _lifecycle.to_status(status, description)
            if resolved is not None:
                self._span.set_status(resolved)
        except Exception:
            logger.debug("spanlake: could not set status", exc_info=True)

    def record_exception(self, exception: BaseException) -> None:
        """Mark the span failed: ERROR status, ``error.type`` and an ``exception`` event."""
        _lifecycle.fail(self._span, exception)

    # --- plumbing -------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, LiveSpan) and other._span is self._span

    def __hash__(self) -> int:
        return id(self._span)

    def __repr__(self) -> str:
        ctx = self._span.get_span_context()
        return f"LiveSpan(name={self.name!r}, trace_id={ctx.trace_id:032x}, span_id={ctx.span_id:016x})"
