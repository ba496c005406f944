"""Stream chunk events, added in one go when the stream ends, each with its chunk's arrival time.

The OTel SDK's ``Span.add_event`` builds a locked ``BoundedAttributes`` (with a cleaning pass)
and an ``Event``, then takes the span's lock and the event list's lock: ~3 µs a call, which
made one event per chunk ~75% of a stream's overhead. So a chunk only notes ``time_ns()``
(and its text when content goes on events) and :func:`add_chunk_events` turns the notes into
events once, before the span ends:

- an SDK span whose ``add_event`` is the SDK's own gets ``Event`` objects built directly
  (bare events share one empty immutable attribute set; a text event gets a read-only
  mapping of its text, cut to the span's attribute-length limit, as ``add_event`` would) and
  appended in one ``extend`` under the span's lock, so the event-count limit still applies
  (the SDK's bounded list drops the oldest and counts them);
- any other span (a subclass overriding ``add_event``, another SDK) gets ``add_event`` with
  the explicit timestamps.

Never raises: on any surprise the SDK path falls back to ``add_event`` before touching the span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
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
    # One str attribute within the limits needs no cleaning pass: a read-only mapping of it
    # is what BoundedAttributes would hold (~3x cheaper). At a limit of 0 attributes,
    # BoundedAttributes itself, so the drop is counted.
    simple = max_attrs is None or max_attrs >= 1
    out = []
    for ts, text in zip(times, texts, strict=False):
        if not text:
            attrs = _NO_ATTRIBUTES
        elif simple:
            attrs = _ContentAttribute(text if max_len is None else text[:max_len])
        else:
            attrs = BoundedAttributes(
                max_attrs, {CONTENT_KEY: text}, immutable=True, max_value_len=max_len
            )
        out.append(event(name, attrs, ts))
    return out


class _ContentAttribute(Mapping[str, str]):
    """A chunk event's only attribute, read-only (unlike a dict) and copyable/picklable
    (unlike ``MappingProxyType``), as exporters and processors may deep-copy spans."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __getitem__(self, key: str) -> str:
        if key == CONTENT_KEY:
            return self._text
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter((CONTENT_KEY,))

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return repr({CONTENT_KEY: self._text})


def _add_one_by_one(
    span: trace_api.Span, name: str, times: Sequence[int], texts: Sequence[str | None] | None
) -> None:
    for i, ts in enumerate(times):
        try:
            text = texts[i] if texts is not None and i < len(texts) else None
            span.add_event(name, {CONTENT_KEY: text} if text else None, timestamp=ts)
        except Exception:
            _logger.debug("spanlake chunk event could not be added", exc_info=True)
