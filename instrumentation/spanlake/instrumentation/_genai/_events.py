"""Stream chunk events, added in one go when the stream ends, each with its chunk's arrival time.

The OTel SDK's ``Span.add_event`` builds a locked ``BoundedAttributes`` (with a cleaning pass)
and an ``Event``, then takes the span's lock and the event list's lock: ~3 µs a call, which
made one event per chunk ~75% of a stream's overhead. So a chunk only notes ``time_ns()``
(and its text when content goes on events) and :func:`add_chunk_events` turns the notes into
events once, before the span ends:

- an SDK span whose ``add_event`` is the SDK's own gets ``Event`` objects built directly
  (bare events share one empty immutable attribute set; a text event gets a
  ``BoundedAttributes`` with the span's event-attribute limits, as ``add_event`` would) and
  appended in one ``extend`` under the span's lock, so the event-count limit still applies
  (the SDK's bounded list drops the oldest and counts them);
- any other span (a subclass overriding ``add_event``, another SDK) gets ``add_event`` with
  the explicit timestamps.

Never raises: on any surprise the SDK path falls back to ``add_event`` before touching the span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry import trace as trace_api

_logger = logging.getLogger("spanlake.instrumentation")

#: Attribute carrying a chunk's text delta (content modes that put content on events).
CONTENT_KEY: Final = "content"

try:  # the SDK is a dependency, but a stripped install must still work (slow path only)
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import Event as _SdkEvent
    from opentelemetry.sdk.trace import Span as _SdkSpan

    _SDK_ADD_EVENT: Any = _SdkSpan.add_event
    _SDK_ADD_EVENT_INNER: Any = _SdkSpan._add_event
    #: Shared by every bare chunk event: immutable, so sharing is safe.
    _NO_ATTRIBUTES: Any = BoundedAttributes(0, None, immutable=True)
except Exception:  # pragma: no cover - exercised only without opentelemetry-sdk
    _SdkSpan = None  # type: ignore[assignment,misc]


def add_chunk_events(
    span: trace_api.Span, name: str, times: Sequence[int], texts: Sequence[str | None] | None
) -> None:
    """Add one event ``name`` per entry of ``times`` (ns since the epoch), with ``texts[i]``
    as its ``content`` attribute when given and non-empty."""
    if not times:
        return
    try:
        if not span.is_recording():
            return
        events = _sdk_events(span, name, times, texts)
    except Exception:
        _logger.debug("spanlake chunk events: SDK fast path unavailable", exc_info=True)
        events = None
    if events is None:
        _add_one_by_one(span, name, times, texts)
        return
    try:
        with span._lock:  # type: ignore[attr-defined]
            if span._end_time is None:  # type: ignore[attr-defined]
                span._events.extend(events)  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - extend on the SDK's bounded list does not raise
        _logger.debug("spanlake chunk events could not be added", exc_info=True)


def _sdk_events(
    span: trace_api.Span, name: str, times: Sequence[int], texts: Sequence[str | None] | None
) -> list[Any] | None:
    """The events for an SDK span, or None when ``span`` is not one we may fill directly."""
    if _SdkSpan is None or not isinstance(span, _SdkSpan):
        return None
    cls = type(span)
    if cls.add_event is not _SDK_ADD_EVENT or cls._add_event is not _SDK_ADD_EVENT_INNER:
        return None  # someone customised event handling: go through it
    if not hasattr(span._events, "extend"):  # pragma: no cover - every SDK 1.x has it
        return None
    event = _SdkEvent
    if texts is None:
        bare = _NO_ATTRIBUTES
        return [event(name, bare, ts) for ts in times]
    limits = span._limits
    max_attrs = limits.max_event_attributes
    max_len = limits.max_attribute_length
    out = []
    for ts, text in zip(times, texts, strict=False):
        if text:
            attrs = BoundedAttributes(
                max_attrs, {CONTENT_KEY: text}, immutable=True, max_value_len=max_len
            )
        else:
            attrs = _NO_ATTRIBUTES
        out.append(event(name, attrs, ts))
    return out


def _add_one_by_one(
    span: trace_api.Span, name: str, times: Sequence[int], texts: Sequence[str | None] | None
) -> None:
    for i, ts in enumerate(times):
        try:
            text = texts[i] if texts is not None and i < len(texts) else None
            span.add_event(name, {CONTENT_KEY: text} if text else None, timestamp=ts)
        except Exception:
            _logger.debug("spanlake chunk event could not be added", exc_info=True)
