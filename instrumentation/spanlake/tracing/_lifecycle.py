"""The few steps every manual span goes through: start, record values, fail, end.

Each helper is safe to call from the application's path: a telemetry failure is logged
and swallowed, never raised (the decorator, the context manager and the client all rely
on that). Spans come from the *global* OTel tracer provider, so they nest with provider
spans and with any other OTel instrumentation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from spanlake.instrumentation._genai._config import content_config
from spanlake.semconv import gen_ai, spanlake_attrs
from spanlake.semconv.span_type import SpanType, coerce_span_type, operation_from_span_type
from spanlake.tracing._capture import capture

logger = logging.getLogger("spanlake.tracing")

_SCOPE = "spanlake.tracing"
_PRIMITIVES = (str, bool, int, float)

# (provider, tracer) of the last lookup: one identity check per span instead of a
# ``get_tracer`` call, and still right if a test harness swaps the global provider.
_tracer_cache: tuple[object, Tracer] | None = None


def tracer() -> Tracer:
    """The tracer of the current global provider."""
    global _tracer_cache
    provider = trace_api.get_tracer_provider()
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    found = provider.get_tracer(_SCOPE)
    _tracer_cache = (provider, found)
    return found


@lru_cache(maxsize=256)
def _type_attributes(span_type: SpanType | str) -> tuple[tuple[str, str], ...]:
    known = coerce_span_type(span_type)
    # Like MLflow, a custom type string is kept as given rather than folded into UNKNOWN.
    value = known.value if known is not SpanType.UNKNOWN else str(span_type) or "UNKNOWN"
    if value == SpanType.UNKNOWN.value:
        return ()  # absent means UNKNOWN to the mapping; one attribute less per span
    pairs = [(spanlake_attrs.SPAN_TYPE, value)]
    operation = operation_from_span_type(known)
    if operation:
        pairs.append((gen_ai.OPERATION_NAME, str(operation)))
    return tuple(pairs)


def start_attributes(
    span_type: SpanType | str | None, attributes: Mapping[str, Any] | None
) -> dict[str, AttributeValue]:
    """Span-type keys (and ``gen_ai.operation.name`` when the type has one) plus user keys."""
    out: dict[str, AttributeValue] = dict(_type_attributes(span_type or SpanType.UNKNOWN))
    if attributes:
        for key, value in attributes.items():
            coerced = attribute_value(value)
            if coerced is not None:
                out[str(key)] = coerced
    return out


def attribute_value(value: Any) -> AttributeValue | None:
    """``value`` as an OTel attribute: primitives and homogeneous lists as they are,
    anything else as capped JSON text (so a dict is kept, not dropped by the SDK)."""
    if isinstance(value, _PRIMITIVES):
        return value
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and next(iter(kinds)) in _PRIMITIVES:
            return list(value)
        if not kinds:
            return []
    return capture(value)[0]


def content_cap() -> int | None:
    """The size cap of one recorded input/output (``SPANLAKE_CONTENT_MAX_BYTES``), or None
    when content capture is off (``NO_CONTENT``): the manual API then records no inputs
    or outputs, as the provider instrumentations record no messages."""
    config = content_config()
    return config.max_bytes if config.enabled else None


def set_value(span: Span, key: str, value: Any) -> None:
    """Record ``value`` as JSON under ``key``, keeping the truncation marker in step."""
    try:
        # Sampled out, no SDK or no content capture: skip the serialisation.
        if span.is_recording() and (cap := content_cap()) is not None:
            set_encoded(span, key, capture(value, cap))
    except Exception:
        logger.debug("spanlake: could not record %s", key, exc_info=True)


def set_encoded(span: Span, key: str, encoded: tuple[str, int | None]) -> None:
    """Set already-captured JSON under ``key`` and its ``spanlake.truncated`` entry."""
    text, original = encoded
    span.set_attribute(key, text)
    existing = _attributes(span).get(spanlake_attrs.TRUNCATED) or ()
    if original is None and not existing:
        return  # the common case: nothing cut, nothing to update
    marks = [m for m in existing if isinstance(m, str) and not m.startswith(key + ":")]
    if original is not None:
        marks.append(f"{key}:{original}")
    span.set_attribute(spanlake_attrs.TRUNCATED, marks)


def _attributes(span: Span) -> Mapping[str, Any]:
    return getattr(span, "attributes", None) or {}


def fail(span: Span, exc: BaseException) -> None:
    """Mark ``span`` as failed by ``exc``: ERROR status, ``error.type``, ``exception`` event."""
    try:
        span.set_attribute(gen_ai.ERROR_TYPE, _error_type(type(exc)))
        span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    except Exception:
        logger.debug("spanlake: could not record an exception", exc_info=True)


def _error_type(kind: type[BaseException]) -> str:
    """The exception's fully qualified class name (``error.type``), bare for builtins."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


_STATUS_NAMES = {code.name: code for code in StatusCode}


def to_status(status: Status | StatusCode | str, description: str | None = None) -> Status | None:
    """A ``Status`` from a Status, a StatusCode or its name ("OK", "error", ...); None if bad."""
    if isinstance(status, Status):
        return status
    if isinstance(status, StatusCode):
        code = status
    else:
        found = _STATUS_NAMES.get(str(status).upper())
        if found is None:
            logger.warning("spanlake: unknown span status %r ignored", status)
            return None
        code = found
    # OTel keeps a description only on ERROR.
    return Status(code, description if code is StatusCode.ERROR else None)


def parent_context(span: Span) -> Context:
    """A context whose only content is ``span`` as parent: no ambient state involved."""
    return trace_api.set_span_in_context(span, Context())


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def hex_trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
