"""Running one SDK call as one invocation, and replacing the SDK's own span while it runs.

Native SDK spans: anthropic >= 2 opens its own CLIENT span per API call and propagates its
context in a ``traceparent`` header. We *replace* it (one span per call, ours): while one of
our invocations runs the request, the SDK's ``start_api_call_span`` is answered by us.
- ``messages.create``/``parse``: we put *our* span's trace headers into ``extra_headers``
  ourselves (only when the SDK would have propagated: its tracing on, ``propagation`` on)
  and answer ``None``, so the SDK takes its span-free fast path (its per-attempt tracing
  machinery costs more than the rest of our instrumentation).
- ``messages.stream()``: the request options are fixed before the span exists, so we answer
  a non-recording span carrying our span's context; the SDK records nothing but sends our
  ``traceparent``.
Calls we do not instrument (models, batches, count_tokens...) keep their native spans.
Older SDKs have no native spans and send no trace headers: we add none either.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.propagate import inject

from spanlake.instrumentation._genai import Invocation, safe_invoke

from ._convert import build_request, input_messages, system_instructions, tool_definitions

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

#: Our invocation's span while its request is in flight, and whether we already put its
#: trace headers on the request (read by the native-span hook).
_CURRENT: contextvars.ContextVar[tuple[trace_api.Span, bool] | None] = contextvars.ContextVar(
    "spanlake_anthropic_call", default=None
)


class Switch:
    """Lets wrappers bound before ``uninstrument()`` (cached SDK helpers) turn into no-ops."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


def start(
    tracer: trace_api.Tracer, resource: Any, kwargs: dict[str, Any], stream: bool
) -> Invocation | None:
    """Open the span for a call on ``resource`` (a Messages resource) with ``kwargs``."""
    request = safe_invoke(build_request, getattr(resource, "_client", None), kwargs, stream=stream)
    if request is None:
        return None
    inv = Invocation.start(tracer, request)
    if inv is not None and inv.captures_content:
        safe_invoke(_record_input, inv, kwargs)
    return inv


def _record_input(inv: Invocation, kwargs: dict[str, Any]) -> None:
    cfg = inv.content
    inv.record_input(
        messages=input_messages(kwargs, cfg),
        system=system_instructions(kwargs, cfg),
        tools=tool_definitions(kwargs),
    )


def with_trace_headers(
    resource: Any, inv: Invocation, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """``kwargs`` with our span's trace headers in ``extra_headers`` where the SDK would have
    sent its own; the flag says the native-span hook may answer ``None``."""
    client = getattr(resource, "_client", None)
    options = getattr(client, "_open_telemetry", None)
    if not isinstance(options, dict):  # an SDK without native tracing: send nothing extra
        return kwargs, False
    if not options.get("propagation", True) or getattr(client, "_tracer", None) is None:
        return kwargs, True
    carrier: dict[str, str] = {}
    inject(carrier, context=trace_api.set_span_in_context(inv.span))
    if not carrier:
        return kwargs, True
    headers = kwargs.get("extra_headers")
    merged = dict(kwargs)
    merged["extra_headers"] = {**(dict(headers) if headers else {}), **carrier}
    return merged, True


def run(
    inv: Invocation, fn: Callable[..., Any], *args: Any, _headers_sent: bool = False, **kwargs: Any
) -> Any:
    """``inv.run`` with the SDK's native span replaced by ours."""
    token = _CURRENT.set((inv.span, _headers_sent))
    try:
        return inv.run(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


async def run_async(
    inv: Invocation,
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    _headers_sent: bool = False,
    **kwargs: Any,
) -> Any:
    token = _CURRENT.set((inv.span, _headers_sent))
    try:
        return await inv.run_async(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


_STREAM_TYPES: tuple[type, type] | None = None


def is_stream(result: Any, *, is_async: bool) -> bool:
    global _STREAM_TYPES
    if _STREAM_TYPES is None:  # imported once (a function-level import costs per call)
        from anthropic import AsyncStream, Stream

        _STREAM_TYPES = (Stream, AsyncStream)
    return isinstance(result, _STREAM_TYPES[is_async])


def native_span_wrapper() -> Wrapper:
    """Wrapper for ``anthropic._base_client.start_api_call_span`` (see module docstring)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        current = _CURRENT.get()
        if current is None:
            return wrapped(*args, **kwargs)
        span, headers_sent = current
        if headers_sent or not kwargs.get("propagation", True):
            return None  # the SDK's span-free fast path
        return trace_api.NonRecordingSpan(span.get_span_context())

    return wrapper
